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

	// MaxApprovals bounds the approvals kept; the least recently used
	// is forgotten first. Zero means [DefaultMaxApprovals].
	MaxApprovals int

	// Notify is called with each new approval, outside any lock, so
	// the user can be asked. It must not block. Nil means the user
	// learns of approvals through [Approvals.Pending].
	Notify func(ctx context.Context, a Approval)

	// Now is the clock. Nil means [time.Now].
	Now func() time.Time

	// Rand makes approval ids. Nil means crypto/rand.
	Rand io.Reader
}

// Approvals is an in-memory [Approver] and [StepUpSource]: an agent's
// challenged action creates a pending approval; the subject approves
// it as themself (never through an agent) with [Approvals.Approve] or
// [Approvals.Handler]; the agent's retry that names the approval (see
// [WithApprovalRef]) then meets the challenge, once, before the
// approval expires. Set it as [Config.StepUps]. It is safe for
// concurrent use.
//
// BUG: approvals live in one process: behind several instances, the
// retry must reach the instance that holds the approval.
type Approvals struct {
	opts ApprovalsOptions

	// mu guards all: the LRU changes on a read.
	mu  sync.Mutex
	all *simplelru.LRU[string, *Approval]
}

var (
	_ Approver     = (*Approvals)(nil)
	_ StepUpSource = (*Approvals)(nil)
)

// NewApprovals returns an empty store. Invalid options give a
// [*ConfigError].
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
	all, err := simplelru.NewLRU[string, *Approval](opts.MaxApprovals, nil)
	if err != nil {
		return nil, fmt.Errorf("runtimeid: approvals: %w", err)
	}
	return &Approvals{opts: opts, all: all}, nil
}

// RequestApproval records a pending approval for ev's action. It fails
// with [ErrApprovalNotApplicable] unless ev is a challenge of a
// delegated identity.
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
	a.mu.Lock()
	stored := ap
	a.all.Add(id, &stored)
	a.mu.Unlock()

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

// Get returns a copy of the approval with the id.
func (a *Approvals) Get(id string) (Approval, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ap, ok := a.all.Peek(id)
	if !ok {
		return Approval{}, false
	}
	return *ap, true
}

// Pending returns the subject's approvals still waiting for a
// decision, oldest first.
func (a *Approvals) Pending(issuer, subject string) []Approval {
	now := a.opts.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Approval
	for _, ap := range a.all.Values() {
		if ap.State == ApprovalPending && now.Before(ap.Expires) &&
			ap.Subject == subject && ap.Issuer == issuer {
			out = append(out, *ap)
		}
	}
	return out
}

// Approve lets the agent perform the approved action once. by must be
// the subject the agent acts for, authenticated as themself: an
// identity that is itself delegated is refused, so no agent approves
// its own actions.
func (a *Approvals) Approve(id string, by *Identity) error {
	return a.decide(id, by, ApprovalApproved)
}

// Deny refuses the approval; the agent's retry stays challenged.
func (a *Approvals) Deny(id string, by *Identity) error {
	return a.decide(id, by, ApprovalDenied)
}

func (a *Approvals) decide(id string, by *Identity, to ApprovalState) error {
	now := a.opts.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	ap, ok := a.all.Get(id)
	switch {
	case !ok:
		return fmt.Errorf("%w: %q", ErrApprovalNotFound, id)
	case by == nil || by.IsDelegated() ||
		by.Subject != ap.Subject || by.Issuer != ap.Issuer:
		return fmt.Errorf("%w: %q", ErrApprovalForbidden, id)
	case ap.State != ApprovalPending || !now.Before(ap.Expires):
		return fmt.Errorf("%w: %q", ErrApprovalClosed, id)
	}
	ap.State = to
	ap.Decided = now
	return nil
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
	now := a.opts.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	ap, ok := a.all.Peek(ref.ID)
	if !ok || ap.State != ApprovalApproved || !now.Before(ap.Expires) ||
		!ap.matches(id, ref.Action) {
		return "", time.Time{}, false
	}
	ap.State = ApprovalUsed
	return ApprovalACR, ap.Decided, true
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
// list, 400, 403 for someone else's approval, 404, 409 when closed.
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
		writeJSON(w, a.Pending(id.Issuer, id.Subject))
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		writeStatus(w, http.StatusMethodNotAllowed)
		return
	}

	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	apID := r.FormValue("id")
	var err error
	switch r.FormValue("decision") {
	case "approve":
		err = a.Approve(apID, id)
	case "deny":
		err = a.Deny(apID, id)
	default:
		writeStatus(w, http.StatusBadRequest)
		return
	}
	switch {
	case errors.Is(err, ErrApprovalNotFound):
		writeStatus(w, http.StatusNotFound)
	case errors.Is(err, ErrApprovalForbidden):
		writeStatus(w, http.StatusForbidden)
	case errors.Is(err, ErrApprovalClosed):
		writeStatus(w, http.StatusConflict)
	default:
		ap, _ := a.Get(apID)
		writeJSON(w, ap)
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
