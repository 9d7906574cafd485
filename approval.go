package runtimeid

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// ApprovalACR is the acr a human approval counts as when it answers a
// challenge: a step-up rule that lists it in acr_values accepts an
// approval, and a rule with only max_age accepts one given within it.
const ApprovalACR = "urn:runtimeid:acr:human-approval"

// Defaults for the zero values of [ApprovalsOptions].
const (
	DefaultApprovalTTL  = 5 * time.Minute
	DefaultMaxApprovals = 10_000
)

// The errors of [Approvals]. Each is wrapped with the approval's id.
var (
	// ErrApprovalNotFound means no approval has the id, or it was
	// forgotten to make room for newer ones.
	ErrApprovalNotFound = errors.New("runtimeid: approval not found")

	// ErrApprovalForbidden means the identity may not decide the
	// approval: only the subject the agent acts for may, as itself and
	// not through any agent.
	ErrApprovalForbidden = errors.New("runtimeid: approval forbidden")

	// ErrApprovalClosed means the approval was already decided, used
	// or has expired.
	ErrApprovalClosed = errors.New("runtimeid: approval closed")

	// ErrApprovalNotApplicable means the evaluation is not a
	// challenge of an action someone performs for its subject.
	ErrApprovalNotApplicable = errors.New("runtimeid: approval not applicable")
)

// Approver asks the user an agent acts for to approve one challenged
// action: a human in the loop instead of a step-up the agent cannot
// perform.
//
// RequestApproval is called by adapters for a [Challenge] of a
// delegated identity ([Identity.IsDelegated]); ev is read-only. It
// returns the pending approval, whose ID the agent presents when it
// retries the action. It must be safe for concurrent use and must not
// block on the user: tell them in the background.
type Approver interface {
	RequestApproval(ctx context.Context, ev *Evaluation) (Approval, error)
}

// ApprovalState is where an [Approval] is in its life.
type ApprovalState uint8

// The approval states.
const (
	ApprovalPending ApprovalState = iota
	ApprovalApproved
	ApprovalDenied
	ApprovalUsed
)

var approvalStateNames = [...]string{"pending", "approved", "denied", "used"}

// String returns "pending", "approved", "denied" or "used".
func (s ApprovalState) String() string {
	if int(s) < len(approvalStateNames) {
		return approvalStateNames[s]
	}
	return "unknown"
}

// MarshalText writes the state's name.
func (s ApprovalState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *ApprovalState) UnmarshalText(b []byte) error {
	for i, name := range approvalStateNames {
		if string(b) == name {
			*s = ApprovalState(i)
			return nil
		}
	}
	return fmt.Errorf("runtimeid: unknown approval state %q", b)
}

// Approval is one request for a human's approval of one agent action.
// It binds the subject, the acting agent, the session and the action,
// so an approval is good for nothing else.
type Approval struct {
	ID        string        `json:"id"`
	State     ApprovalState `json:"state"`
	Subject   string        `json:"sub"`       // who must approve
	Issuer    string        `json:"iss"`       // the subject's issuer
	Actor     string        `json:"act"`       // who acts: [Identity.ActingSubject]
	ClientID  string        `json:"client_id"` // the agent's client
	SessionID string        `json:"sid,omitempty"`
	Action    string        `json:"action"`
	Reason    string        `json:"reason"` // why it was challenged
	Created   time.Time     `json:"created"`
	Expires   time.Time     `json:"expires"`
	Decided   time.Time     `json:"decided,omitzero"`
}

// ApprovalsOptions configure [Approvals]. The zero value means the
// defaults.
type ApprovalsOptions struct {
	// TTL is how long an approval may be decided and then used. Zero
	// means [DefaultApprovalTTL].
	TTL time.Duration

	// MaxApprovals bounds the approvals kept in memory when Store is
	// nil; the least recently used is forgotten first. Zero means
	// [DefaultMaxApprovals].
	MaxApprovals int

	// Store keeps the approvals. Nil means this process's memory,
	// bounded by MaxApprovals; behind several instances, give every
	// instance the same shared store (adapters/redis has one), so an
	// approval created on one can be decided on another and used on a
	// third.
	Store ApprovalStore

	// Notify is called with each new approval, outside any lock, so
	// the user can be asked. It must not block. Nil means the user
	// learns of approvals through [Approvals.Pending].
	Notify func(ctx context.Context, a Approval)

	// Now is the clock. Nil means [time.Now].
	Now func() time.Time

	// Rand makes approval ids. Nil means crypto/rand.
	Rand io.Reader
}

// ApprovalStore keeps the approvals of [Approvals]. The default keeps
// them in this process's memory; a shared one (adapters/redis has one)
// lets every instance of a service see the same approvals.
//
// The fields of an approval never change once added, except State and
// Decided, and only through Swap: that is what makes a decision, and
// the single use of an approval, atomic across instances.
// Implementations must be safe for concurrent use. An error means the
// store could not answer; [Approvals] then refuses: no approval is
// created, decided or used.
type ApprovalStore interface {
	// Add records a new approval until some time after its Expires.
	Add(ctx context.Context, a Approval) error

	// Get returns the approval with the id, or false when there is
	// none (never created, or forgotten).
	Get(ctx context.Context, id string) (Approval, bool, error)

	// List returns approvals of the subject, oldest first. It may
	// leave out some: expired ones, or the oldest beyond a bound.
	List(ctx context.Context, issuer, subject string) ([]Approval, error)

	// Swap replaces the approval next.ID with next if its state is
	// still from, atomically, and reports whether it did: of several
	// callers swapping from the same state, on any instance, at most
	// one gets true. It reports false when the approval is gone.
	Swap(ctx context.Context, next Approval, from ApprovalState) (bool, error)
}

// Approvals is an [Approver] and [StepUpSource]: an agent's challenged
// action creates a pending approval; the subject approves it as
// themself (never through an agent) with [Approvals.Approve] or
// [Approvals.Handler]; the agent's retry that names the approval (see
// [WithApprovalRef]) then meets the challenge, once, before the
// approval expires. Set it as [Config.StepUps]. It is safe for
// concurrent use.
//
// The approvals are kept in [ApprovalsOptions.Store]: in memory by
// default, so behind several instances the retry must reach the
// instance that holds the approval, unless every instance is given
// the same shared store.
type Approvals struct {
	opts  ApprovalsOptions
	store ApprovalStore
}

var (
	_ Approver      = (*Approvals)(nil)
	_ StepUpSource  = (*Approvals)(nil)
	_ ApprovalStore = (*memoryApprovals)(nil)
)

// NewApprovals returns approvals kept in opts.Store, or in memory.
// Invalid options give a [*ConfigError].
func NewApprovals(opts ApprovalsOptions) (*Approvals, error) {
	if opts.TTL < 0 || opts.MaxApprovals < 0 {
		return nil, &ConfigError{Field: "ApprovalsOptions",
			Reason: "TTL and MaxApprovals must not be negative"}
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultApprovalTTL
	}
	if opts.MaxApprovals == 0 {
		opts.MaxApprovals = DefaultMaxApprovals
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	store := opts.Store
	if store == nil {
		store = newMemoryApprovals(opts.MaxApprovals)
	}
	return &Approvals{opts: opts, store: store}, nil
}

// RequestApproval records a pending approval for ev's action. It fails
// with [ErrApprovalNotApplicable] unless ev is a challenge of a
// delegated identity, and with the store's error when it cannot
// record it.
func (a *Approvals) RequestApproval(ctx context.Context, ev *Evaluation) (Approval, error) {
	if ev == nil || !ev.Identity.IsDelegated() || ev.Decision.Outcome != Challenge {
		return Approval{}, ErrApprovalNotApplicable
	}
	id, err := a.newID()
	if err != nil {
		return Approval{}, err
	}
	now := a.opts.Now()
	who := ev.Identity
	ap := Approval{
		ID: id, Subject: who.Subject, Issuer: who.Issuer,
		Actor: who.ActingSubject(), ClientID: who.Actor.ClientID,
		SessionID: who.SessionID, Action: ev.Action.Name,
		Reason: ev.Decision.Reason, Created: now, Expires: now.Add(a.opts.TTL),
	}
	if err := a.store.Add(ctx, ap); err != nil {
		return Approval{}, fmt.Errorf("runtimeid: approval %q: %w", id, err)
	}

	if a.opts.Notify != nil {
		a.opts.Notify(ctx, ap)
	}
	return ap, nil
}

func (a *Approvals) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(a.opts.Rand, b[:]); err != nil {
		return "", fmt.Errorf("runtimeid: approval id: %w", err)
	}
	return fmt.Sprintf("apr_%x", b), nil
}

// get asks the store for the approval, unless id lacks the shape of
// the ids newID makes: an agent's made-up id costs no round trip.
func (a *Approvals) get(ctx context.Context, id string) (Approval, bool, error) {
	if len(id) != len("apr_")+32 || id[:4] != "apr_" {
		return Approval{}, false, nil
	}
	return a.store.Get(ctx, id)
}

// Get returns a copy of the approval with the id, or false when there
// is none. An error says the store could not answer.
func (a *Approvals) Get(ctx context.Context, id string) (Approval, bool, error) {
	ap, ok, err := a.get(ctx, id)
	if err != nil {
		return Approval{}, false, fmt.Errorf("runtimeid: approval %q: %w", id, err)
	}
	return ap, ok, nil
}

// Pending returns the subject's approvals still waiting for a
// decision, oldest first. An error says the store could not answer.
func (a *Approvals) Pending(ctx context.Context, issuer, subject string) ([]Approval, error) {
	return a.pending(ctx, issuer, subject)
}

func (a *Approvals) pending(ctx context.Context, issuer, subject string) ([]Approval, error) {
	all, err := a.store.List(ctx, issuer, subject)
	if err != nil {
		return nil, fmt.Errorf("runtimeid: pending approvals: %w", err)
	}
	now := a.opts.Now()
	var out []Approval
	for _, ap := range all {
		if ap.State == ApprovalPending && now.Before(ap.Expires) &&
			ap.Subject == subject && ap.Issuer == issuer {
			out = append(out, ap)
		}
	}
	return out, nil
}

// Approve lets the agent perform the approved action once. by must be
// the subject the agent acts for, authenticated as themself: an
// identity that is itself delegated is refused, so no agent approves
// its own actions.
func (a *Approvals) Approve(ctx context.Context, id string, by *Identity) error {
	_, err := a.decide(ctx, id, by, ApprovalApproved)
	return err
}

// Deny refuses the approval; the agent's retry stays challenged.
func (a *Approvals) Deny(ctx context.Context, id string, by *Identity) error {
	_, err := a.decide(ctx, id, by, ApprovalDenied)
	return err
}

// decide reads the approval, checks who decides, then swaps it out of
// pending: of two decisions racing, on any instance, one wins and the
// other finds it closed.
func (a *Approvals) decide(ctx context.Context, id string, by *Identity,
	to ApprovalState) (Approval, error) {
	now := a.opts.Now()
	ap, ok, err := a.get(ctx, id)
	switch {
	case err != nil:
		return Approval{}, fmt.Errorf("runtimeid: approval %q: %w", id, err)
	case !ok:
		return Approval{}, fmt.Errorf("%w: %q", ErrApprovalNotFound, id)
	case by == nil || by.IsDelegated() ||
		by.Subject != ap.Subject || by.Issuer != ap.Issuer:
		return Approval{}, fmt.Errorf("%w: %q", ErrApprovalForbidden, id)
	case ap.State != ApprovalPending || !now.Before(ap.Expires):
		return Approval{}, fmt.Errorf("%w: %q", ErrApprovalClosed, id)
	}

	ap.State, ap.Decided = to, now
	won, err := a.store.Swap(ctx, ap, ApprovalPending)
	switch {
	case err != nil:
		return Approval{}, fmt.Errorf("runtimeid: approval %q: %w", id, err)
	case !won:
		return Approval{}, fmt.Errorf("%w: %q", ErrApprovalClosed, id)
	}
	return ap, nil
}

// memoryApprovals is the default [ApprovalStore]: at most max
// approvals in this process, the least recently used forgotten first.
type memoryApprovals struct {
	// mu guards all: the LRU changes on a read, and Swap writes
	// through its pointers.
	mu  sync.Mutex
	all *simplelru.LRU[string, *Approval]
}

func newMemoryApprovals(max int) *memoryApprovals {
	// NewLRU fails only for a size below one.
	all, _ := simplelru.NewLRU[string, *Approval](max, nil)
	return &memoryApprovals{all: all}
}

// Add implements [ApprovalStore].
func (m *memoryApprovals) Add(_ context.Context, a Approval) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.all.Add(a.ID, &a)
	return nil
}

// Get implements [ApprovalStore]. It leaves the approval's recency as
// it is.
func (m *memoryApprovals) Get(_ context.Context, id string) (Approval, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.all.Peek(id)
	if !ok {
		return Approval{}, false, nil
	}
	return *a, true, nil
}

// List implements [ApprovalStore] by going through every approval.
func (m *memoryApprovals) List(_ context.Context, issuer, subject string) ([]Approval, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Approval
	for _, a := range m.all.Values() {
		if a.Subject == subject && a.Issuer == issuer {
			out = append(out, *a)
		}
	}
	return out, nil
}

// Swap implements [ApprovalStore]. A decision makes the approval the
// most recently used, so it outlives older ones until it is used; a
// later swap leaves it in its place.
func (m *memoryApprovals) Swap(_ context.Context, next Approval, from ApprovalState) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	get := m.all.Peek
	if from == ApprovalPending {
		get = m.all.Get
	}
	cur, ok := get(next.ID)
	if !ok || cur.State != from {
		return false, nil
	}
	*cur = next
	return true, nil
}

// ApprovalRef names the approval an agent presents with a retried
// action, and the action the adapter is evaluating.
type ApprovalRef struct {
	ID     string
	Action string
}

type approvalKey struct{}

// WithApprovalRef returns a copy of ctx that carries ref, for
// [Approvals.StepUp] to find when the engine evaluates the action.
// Adapters set ref.Action to the action they evaluate, never to a
// value from the client.
func WithApprovalRef(ctx context.Context, ref ApprovalRef) context.Context {
	return context.WithValue(ctx, approvalKey{}, ref)
}

// ApprovalRefFrom returns the approval reference in ctx.
func ApprovalRefFrom(ctx context.Context) (ApprovalRef, bool) {
	ref, ok := ctx.Value(approvalKey{}).(ApprovalRef)
	return ref, ok && ref.ID != ""
}

// StepUp implements [StepUpSource]: it reports the approval named in
// ctx as a step-up with acr [ApprovalACR] at the time of approval, when
// it is approved, unexpired and unused, and was made for this subject,
// issuer, acting agent, session and action. Reporting it uses it up,
// so it reports nothing when want does not accept [ApprovalACR]: an
// approval is not spent on a challenge it cannot meet.
func (a *Approvals) StepUp(ctx context.Context, id *Identity,
	want *StepUp) (string, time.Time, bool) {
	ref, ok := ApprovalRefFrom(ctx)
	if !ok || !id.IsDelegated() || !acceptsACR(want, ApprovalACR) {
		return "", time.Time{}, false
	}
	decided, ok := a.use(ctx, ref, id, want)
	if !ok {
		return "", time.Time{}, false
	}
	return ApprovalACR, decided, true
}

// use marks the approval used if it answers ref for id: read, check,
// then a swap that only one caller wins, on any instance sharing the
// store. A store that cannot answer uses nothing: the challenge
// stands. Nor is an approval decided longer ago than want's max age
// used: it could not meet the challenge.
func (a *Approvals) use(ctx context.Context, ref ApprovalRef, id *Identity,
	want *StepUp) (time.Time, bool) {
	now := a.opts.Now()
	ap, ok, err := a.get(ctx, ref.ID)
	if err != nil || !ok || ap.State != ApprovalApproved ||
		!now.Before(ap.Expires) || !ap.matches(id, ref.Action) {
		return time.Time{}, false
	}
	as := Identity{ACR: ApprovalACR, AuthTime: ap.Decided}
	if want != nil && !want.SatisfiedBy(&as, now) {
		return time.Time{}, false
	}
	next := ap
	next.State = ApprovalUsed
	won, err := a.store.Swap(ctx, next, ApprovalApproved)
	return ap.Decided, err == nil && won
}

func (ap *Approval) matches(id *Identity, action string) bool {
	return ap.Subject == id.Subject && ap.Issuer == id.Issuer &&
		ap.Actor == id.ActingSubject() && ap.ClientID == id.Actor.ClientID &&
		ap.SessionID == id.SessionID && ap.Action == action
}

// Handler returns the endpoint where the subject decides approvals:
// POST with form values id and decision ("approve" or "deny"), or GET
// for the caller's pending approvals as JSON. It reads the caller's
// identity from the context, so it must sit behind the engine's
// [Engine.Protect] (as a high-sensitivity action, so the user
// authenticated recently). Answers: 200 with the approval or the
// list, 400, 403 for someone else's approval, 404, 409 when closed,
// 503 when the store cannot answer.
func (a *Approvals) Handler() http.Handler {
	return http.HandlerFunc(a.serve)
}

func (a *Approvals) serve(w http.ResponseWriter, r *http.Request) {
	id := IdentityFrom(r.Context())
	if id == nil || DecisionFrom(r.Context()).Outcome != Allow {
		writeStatus(w, http.StatusForbidden)
		return
	}
	switch r.Method {
	case http.MethodGet:
		a.serveList(w, r, id)
	case http.MethodPost:
		a.serveDecision(w, r, id)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeStatus(w, http.StatusMethodNotAllowed)
	}
}

func (a *Approvals) serveList(w http.ResponseWriter, r *http.Request, id *Identity) {
	list, err := a.pending(r.Context(), id.Issuer, id.Subject)
	if err != nil {
		writeStatus(w, http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, list)
}

func (a *Approvals) serveDecision(w http.ResponseWriter, r *http.Request, id *Identity) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	apID := r.FormValue("id")
	var to ApprovalState
	switch r.FormValue("decision") {
	case "approve":
		to = ApprovalApproved
	case "deny":
		to = ApprovalDenied
	default:
		writeStatus(w, http.StatusBadRequest)
		return
	}
	ap, err := a.decide(r.Context(), apID, id, to)
	switch {
	case err == nil:
		writeJSON(w, ap)
	case errors.Is(err, ErrApprovalNotFound):
		writeStatus(w, http.StatusNotFound)
	case errors.Is(err, ErrApprovalForbidden):
		writeStatus(w, http.StatusForbidden)
	case errors.Is(err, ErrApprovalClosed):
		writeStatus(w, http.StatusConflict)
	default:
		// The store could not answer: nothing was decided.
		writeStatus(w, http.StatusServiceUnavailable)
	}
}

func writeStatus(w http.ResponseWriter, code int) {
	http.Error(w, http.StatusText(code), code)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
