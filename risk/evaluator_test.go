package risk

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// Places, with city-centre coordinates. The distances from London,
// computed with the haversine formula on a sphere of radius 6371 km:
//
//	Linköping (58.4108, 15.6214):  1259.88 km
//	Paris     (48.8566,  2.3522):   343.56 km
//	Camden    (51.5549, -0.1084):     5.45 km
var (
	london    = place3("GB", 51.5074, -0.1278, 2856)
	linkoping = place3("SE", 58.4108, 15.6214, 2856)
	paris     = place3("FR", 48.8566, 2.3522, 2856)
	camden    = place3("GB", 51.5549, -0.1084, 2856)
)

func place3(country string, lat, lon float64, asn uint) runtimeid.NetworkSignals {
	return runtimeid.NetworkSignals{
		Country: country, Latitude: lat, Longitude: lon,
		HasLocation: true, ASN: asn,
	}
}

var chrome = runtimeid.DeviceSignals{
	Browser: "Chrome", BrowserVersion: "120.0.6099.109",
	OS: "Windows", Type: "desktop",
}

// req is one evaluation of subject alice.
type req struct {
	at      time.Duration // after t0
	net     runtimeid.NetworkSignals
	dev     runtimeid.DeviceSignals
	session runtimeid.SessionSignals
	sens    runtimeid.Sensitivity
	anon    bool // no identity
}

func (r req) eval() *runtimeid.Evaluation {
	ev := &runtimeid.Evaluation{Time: t0.Add(r.at)}
	if !r.anon {
		ev.Identity = &runtimeid.Identity{Subject: "alice"}
	}
	ev.Signals.Network = r.net
	ev.Signals.Device = r.dev
	ev.Signals.Session = r.session
	ev.Action.Sensitivity = r.sens
	if r.sens == runtimeid.SensitivityUnset {
		ev.Action.Sensitivity = runtimeid.Medium
	}
	return ev
}

func with[T any](v T, f func(*T)) T {
	f(&v)
	return v
}

func finding(code string, w float64, detail string) runtimeid.Finding {
	return runtimeid.Finding{Code: code, Weight: w, Detail: detail}
}

func TestAssess(t *testing.T) {
	home := req{net: london, dev: chrome}

	tests := []struct {
		name    string
		history []req
		now     req
		want    []runtimeid.Finding
	}{
		{
			name: "cold start",
			now:  home,
			want: []runtimeid.Finding{
				finding(CodeFirstSeen, 0.1, "no baseline for this subject yet"),
			},
		},
		{
			name:    "same place same device",
			history: []req{home},
			now:     with(home, func(r *req) { r.at = time.Hour }),
		},
		{
			// 1259.88 km in 10 min is 7559.31 km/h.
			name:    "London then Linköping 10 minutes later",
			history: []req{home},
			now:     req{at: 10 * time.Minute, net: linkoping, dev: chrome},
			want: []runtimeid.Finding{
				finding(CodeNewCountry, 0.35, "country SE not seen for this subject"),
				finding(CodeImpossibleTravel, 0.9,
					"1260 km from GB to SE in 10 min: 7559 km/h, limit 1000 km/h"),
			},
		},
		{
			// 343.56 km in 5 h is 68.71 km/h.
			name:    "London then Paris after 5 hours",
			history: []req{home},
			now:     req{at: 5 * time.Hour, net: paris, dev: chrome},
			want: []runtimeid.Finding{
				finding(CodeNewCountry, 0.35, "country FR not seen for this subject"),
			},
		},
		{
			// 343.56 km in the same instant counts as one minute:
			// 20613.36 km/h.
			name:    "London then Paris at the same instant",
			history: []req{home},
			now:     req{net: paris, dev: chrome},
			want: []runtimeid.Finding{
				finding(CodeNewCountry, 0.35, "country FR not seen for this subject"),
				finding(CodeImpossibleTravel, 0.9,
					"344 km from GB to FR in 1 min: 20613 km/h, limit 1000 km/h"),
			},
		},
		{
			// 5.45 km is below MinTravelKM.
			name:    "same city 1 minute later",
			history: []req{home},
			now:     req{at: time.Minute, net: camden, dev: chrome},
		},
		{
			// 1259.88 km less 500 and 700 km of uncertainty is 59.88
			// km, below MinTravelKM.
			name: "uncertain locations",
			history: []req{{net: with(london, func(n *runtimeid.NetworkSignals) {
				n.AccuracyKM = 500
			}), dev: chrome}},
			now: req{at: 10 * time.Minute, dev: chrome,
				net: with(linkoping, func(n *runtimeid.NetworkSignals) {
					n.AccuracyKM = 700
				})},
			want: []runtimeid.Finding{
				finding(CodeNewCountry, 0.35, "country SE not seen for this subject"),
			},
		},
		{
			// 1259.88 km less 100 and 50 km is 1109.88 km; in 10 min
			// that is 6659.31 km/h.
			name: "somewhat uncertain locations",
			history: []req{{net: with(london, func(n *runtimeid.NetworkSignals) {
				n.AccuracyKM = 100
			}), dev: chrome}},
			now: req{at: 10 * time.Minute, dev: chrome,
				net: with(linkoping, func(n *runtimeid.NetworkSignals) {
					n.AccuracyKM = 50
				})},
			want: []runtimeid.Finding{
				finding(CodeNewCountry, 0.35, "country SE not seen for this subject"),
				finding(CodeImpossibleTravel, 0.9,
					"1110 km from GB to SE in 10 min: 6659 km/h, limit 1000 km/h"),
			},
		},
		{
			name:    "missing geolocation",
			history: []req{home},
			now:     req{at: 10 * time.Minute, dev: chrome},
		},
		{
			name:    "no location learned yet",
			history: []req{{dev: chrome}},
			now:     req{at: time.Minute, net: linkoping, dev: chrome},
			want: []runtimeid.Finding{
				finding(CodeNewCountry, 0.35, "country SE not seen for this subject"),
				finding(CodeNewASN, 0.15, "AS2856 not seen for this subject"),
			},
		},
		{
			name:    "new ASN",
			history: []req{home},
			now: req{at: time.Hour, dev: chrome,
				net: with(london, func(n *runtimeid.NetworkSignals) { n.ASN = 5089 })},
			want: []runtimeid.Finding{
				finding(CodeNewASN, 0.15, "AS5089 not seen for this subject"),
			},
		},
		{
			name:    "tor",
			history: []req{home},
			now: req{at: time.Hour, dev: chrome,
				net: with(london, func(n *runtimeid.NetworkSignals) {
					n.Anonymous, n.Tor, n.VPN = true, true, true
				})},
			want: []runtimeid.Finding{
				finding(CodeAnonymousNetwork, 0.8, "request comes through a Tor exit node"),
			},
		},
		{
			name:    "hosting",
			history: []req{home},
			now: req{at: time.Hour, dev: chrome,
				net: with(london, func(n *runtimeid.NetworkSignals) {
					n.Anonymous, n.Hosting = true, true
				})},
			want: []runtimeid.Finding{
				finding(CodeAnonymousNetwork, 0.4, "request comes from a hosting provider"),
			},
		},
		{
			name:    "new device after learning one",
			history: []req{home},
			now: req{at: time.Hour, net: london, dev: runtimeid.DeviceSignals{
				Browser: "Firefox", BrowserVersion: "123", OS: "Windows", Type: "desktop",
			}},
			want: []runtimeid.Finding{
				finding(CodeNewDevice, 0.25,
					"Firefox 123 on Windows (desktop) not seen for this subject"),
			},
		},
		{
			name:    "browser minor version bump",
			history: []req{home},
			now: req{at: time.Hour, net: london,
				dev: with(chrome, func(d *runtimeid.DeviceSignals) {
					d.BrowserVersion = "120.0.6099.130"
					d.UserAgent = "Mozilla/5.0 ... Chrome/120.0.6099.130"
				})},
		},
		{
			name:    "browser major version bump",
			history: []req{home},
			now: req{at: time.Hour, net: london,
				dev: with(chrome, func(d *runtimeid.DeviceSignals) {
					d.BrowserVersion = "121"
				})},
			want: []runtimeid.Finding{
				finding(CodeNewDevice, 0.25,
					"Chrome 121 on Windows (desktop) not seen for this subject"),
			},
		},
		{
			name: "new device ID",
			history: []req{{net: london,
				dev: with(chrome, func(d *runtimeid.DeviceSignals) { d.ID = "dev-1" })}},
			now: req{at: time.Hour, net: london,
				dev: with(chrome, func(d *runtimeid.DeviceSignals) { d.ID = "dev-2" })},
			want: []runtimeid.Finding{
				finding(CodeNewDevice, 0.25, "device ID not seen for this subject"),
			},
		},
		{
			name:    "no device signals",
			history: []req{home},
			now:     req{at: time.Hour, net: london},
		},
		{
			name:    "bot",
			history: []req{home},
			now: req{at: time.Hour, net: london, dev: runtimeid.DeviceSignals{
				Browser: "Googlebot", BrowserVersion: "2", OS: "Other", Type: "bot", Bot: true,
			}},
			want: []runtimeid.Finding{
				finding(CodeNewDevice, 0.25,
					"Googlebot 2 on Other (bot) not seen for this subject"),
				finding(CodeBotUserAgent, 0.5, "user agent identifies as a bot: Googlebot"),
			},
		},
		{
			name:    "stale authentication",
			history: []req{home},
			now: with(home, func(r *req) {
				r.at = time.Hour
				r.sens = runtimeid.High
				r.session = runtimeid.SessionSignals{SinceAuth: 13 * time.Hour, HasAuthTime: true}
			}),
			want: []runtimeid.Finding{
				finding(CodeStaleAuthentication, 0.3,
					"authenticated 13h0m0s ago; high-sensitivity actions need one within 12h0m0s"),
			},
		},
		{
			name:    "no auth_time on a high action",
			history: []req{home},
			now: with(home, func(r *req) {
				r.at = time.Hour
				r.sens = runtimeid.High
			}),
			want: []runtimeid.Finding{
				finding(CodeStaleAuthentication, 0.3,
					"token has no auth_time; high-sensitivity actions need one within 12h0m0s"),
			},
		},
		{
			name:    "recent authentication on a high action",
			history: []req{home},
			now: with(home, func(r *req) {
				r.at = time.Hour
				r.sens = runtimeid.High
				r.session = runtimeid.SessionSignals{SinceAuth: 12 * time.Hour, HasAuthTime: true}
			}),
		},
		{
			name:    "no auth_time on a medium action",
			history: []req{home},
			now:     with(home, func(r *req) { r.at = time.Hour }),
		},
		{
			name: "unauthenticated",
			now: req{anon: true, net: with(london, func(n *runtimeid.NetworkSignals) {
				n.Anonymous, n.Tor = true, true
			})},
			want: []runtimeid.Finding{
				finding(CodeAnonymousNetwork, 0.8, "request comes through a Tor exit node"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e, err := NewEvaluator(NewMemoryStore(), Options{})
			require.NoError(t, err)
			for _, h := range tt.history {
				e.Learn(ctx, h.eval())
			}

			got, err := e.Assess(ctx, tt.now.eval())
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestAssessUnauthenticatedLearnsNothing(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	e, err := NewEvaluator(store, Options{})
	require.NoError(t, err)

	e.Learn(ctx, req{anon: true, net: london}.eval())
	e.Learn(ctx, &runtimeid.Evaluation{Identity: &runtimeid.Identity{}})
	assert.Equal(t, 0, store.Len())
}

func TestOptions(t *testing.T) {
	ctx := context.Background()
	e, err := NewEvaluator(NewMemoryStore(), Options{
		MaxSpeedKMH: 10000,
		Weights:     Weights{FirstSeen: Off, Tor: 1, NewCountry: 0.5},
	})
	require.NoError(t, err)

	tor := with(london, func(n *runtimeid.NetworkSignals) { n.Tor = true })
	got, err := e.Assess(ctx, req{net: tor}.eval())
	require.NoError(t, err)
	assert.Equal(t, []runtimeid.Finding{
		finding(CodeAnonymousNetwork, 1, "request comes through a Tor exit node"),
	}, got)

	// 7559 km/h is below the raised limit.
	e.Learn(ctx, req{net: london}.eval())
	got, err = e.Assess(ctx, req{at: 10 * time.Minute, net: linkoping}.eval())
	require.NoError(t, err)
	assert.Equal(t, []runtimeid.Finding{
		finding(CodeNewCountry, 0.5, "country SE not seen for this subject"),
	}, got)
}

func TestAnonymousNetworkFlagTurnedOff(t *testing.T) {
	e, err := NewEvaluator(NewMemoryStore(), Options{
		Weights: Weights{Tor: Off},
	})
	require.NoError(t, err)

	n := with(london, func(n *runtimeid.NetworkSignals) { n.Tor, n.VPN = true, true })
	got, err := e.Assess(context.Background(), req{anon: true, net: n}.eval())
	require.NoError(t, err)
	assert.Equal(t, []runtimeid.Finding{
		finding(CodeAnonymousNetwork, 0.5, "request comes through a VPN"),
	}, got)
}

func TestNewEvaluatorErrors(t *testing.T) {
	tests := []struct {
		name  string
		store Store
		opts  Options
		field string
	}{
		{"nil store", nil, Options{},
			"risk.NewEvaluator store"},
		{"negative speed", NewMemoryStore(), Options{MaxSpeedKMH: -1},
			"risk.Options.MaxSpeedKMH"},
		{"infinite travel", NewMemoryStore(), Options{MinTravelKM: inf()},
			"risk.Options.MinTravelKM"},
		{"negative stale", NewMemoryStore(), Options{StaleAfter: -time.Hour},
			"risk.Options.StaleAfter"},
		{"weight above 1", NewMemoryStore(), Options{Weights: Weights{Bot: 1.5}},
			"risk.Options.Weights.Bot"},
		{"NaN weight", NewMemoryStore(), Options{Weights: Weights{Hosting: nan()}},
			"risk.Options.Weights.Hosting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEvaluator(tt.store, tt.opts)
			assert.Nil(t, e)
			require.ErrorIs(t, err, runtimeid.ErrConfig)
			var ce *runtimeid.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.field, ce.Field)
		})
	}
}

// failingStore fails every call.
type failingStore struct{ err error }

func (s failingStore) Get(context.Context, string) (*Profile, error) {
	return nil, s.err
}

func (s failingStore) Update(context.Context, string, func(*Profile)) error {
	return s.err
}

func TestStoreErrors(t *testing.T) {
	errDown := errors.New("store down")
	e, err := NewEvaluator(failingStore{errDown}, Options{})
	require.NoError(t, err)

	got, err := e.Assess(context.Background(), req{net: london}.eval())
	assert.Nil(t, got)
	require.ErrorIs(t, err, errDown)
	assert.EqualError(t, err, "risk: read profile: store down")

	// Learn has nowhere to return the error; it must not panic.
	e.Learn(context.Background(), req{net: london}.eval())

	// Without a subject the store is not read, so nothing fails.
	got, err = e.Assess(context.Background(), req{anon: true}.eval())
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestLongSubjectIsHashed(t *testing.T) {
	long := make([]byte, 10000)
	for i := range long {
		long[i] = 'a'
	}
	key, ok := subjectKey(&runtimeid.Identity{Subject: string(long)})
	require.True(t, ok)
	assert.Equal(t, "sha256:", key[:7])
	assert.Len(t, key, 7+64)

	key, ok = subjectKey(&runtimeid.Identity{Subject: "alice"})
	require.True(t, ok)
	assert.Equal(t, "alice", key)
}
