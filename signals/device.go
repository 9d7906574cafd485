package signals

import (
	"context"
	"strings"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/ua-parser/uap-go/uaparser"

	"github.com/runtimeid/runtimeid"
)

// DeviceCacheSize is how many distinct user agents a [Device] keeps
// parsed. At most [runtimeid.MaxUserAgent] bytes of each are kept, so the
// cache holds at most about 2 MiB of keys.
const DeviceCacheSize = 4096

// Device parses [runtimeid.DeviceSignals.UserAgent] into the browser and
// OS family and major version, a device type and a bot flag.
//
// What it trusts: nothing. The user agent and the client hints are
// whatever the client sent; a client can claim to be any browser, or
// not a bot. Treat the result as a hint for risk (a new device, a
// change of browser), never as proof of anything. Device never reads
// the device ID; [DeviceID] does.
//
// Client hints: when the request carries Sec-CH-UA, Sec-CH-UA-Platform
// or Sec-CH-UA-Mobile and the user agent names a Chromium-based browser
// (or none), the hints win over the user agent, since Chrome freezes
// parts of its user agent string. [ClientHints] says exactly how.
//
// Families come from uap-core's rules through github.com/ua-parser/uap-go,
// chosen for its accuracy over medama-io/go-useragent and
// mssola/useragent (see signals/internal/uaeval for the measurement).
// Mobile variants are folded into the browser they are ("Chrome Mobile"
// is "Chrome", "Mobile Safari" is "Safari"); an unknown family is "".
// The type ("desktop", "mobile", "tablet", "bot" or "other") comes from
// keywords in the user agent, which scored better than uap-core's device
// rules and costs a fraction of them.
//
// Results are cached per user agent in a bounded LRU of
// [DeviceCacheSize] entries, since real traffic repeats a few user
// agents. Collect never fails. Device is safe for concurrent use.
//
// An uncached parse runs uap-core's rules behind a literal prefilter
// (uaprefilter.go) that skips every rule whose required text is absent
// from the user agent; the answers are exactly uap-go's. Measured over
// the 2,337 user agents of the uap-core and woothee test sets, it costs
// about 0.1 ms of CPU instead of 0.44 ms.
//
// BUG: a client that sends a new user agent on every request still
// makes each request pay an uncached parse; one stuffed with the
// literals of many rules took 0.15 ms (0.8 ms without the prefilter),
// and no worst case is proven. Go's regexp
// runs in linear time and the user agent is at most 512 bytes, so the
// cost is bounded, but a rate limit in front of the engine is still
// wise.
type Device struct {
	cache *lru.Cache[string, runtimeid.DeviceSignals]
}

var _ runtimeid.SignalCollector = (*Device)(nil)

// uapParser compiles uap-core's rules once per process; that takes
// a moment and the compiled rules are read-only afterwards.
var uapParser = sync.OnceValue(func() *uaparser.Parser {
	// uap-go's own cache cannot be turned off (size 0 panics); ours
	// sits in front of it, so it gets the smallest one.
	p, err := uaparser.New(uaparser.WithCacheSize(1))
	if err != nil {
		// The rules are embedded in uap-go; this cannot fail at
		// run time if it did not fail in its tests.
		panic("signals: uap-core rules: " + err.Error())
	}
	return p
})

// uapFilter puts a literal prefilter in front of uap-core's rules (see
// uaprefilter.go): the same answers, several times faster.
var uapFilter = sync.OnceValue(func() *prefilter {
	return newPrefilter(uapParser())
})

// NewDevice returns a device collector with its own cache. The first
// call in a process compiles uap-core's rules.
func NewDevice() *Device {
	return newDevice(DeviceCacheSize)
}

func newDevice(size int) *Device {
	c, err := lru.New[string, runtimeid.DeviceSignals](size)
	if err != nil {
		panic("signals: device cache: " + err.Error()) // size is > 0
	}
	uapFilter()
	return &Device{cache: c}
}

// Collect implements [runtimeid.SignalCollector]. It keeps the user
// agent and device ID already in ev.Signals.Device and fills the rest:
// from the user agent, refined by the request's client hints (see
// [ParseClientHints]) when the browser is Chromium-based.
func (d *Device) Collect(_ context.Context, ev *runtimeid.Evaluation) error {
	dev := &ev.Signals.Device
	p := d.Parse(dev.UserAgent)
	p.UserAgent, p.ID = dev.UserAgent, dev.ID
	if ev.Request != nil {
		applyHints(ParseClientHints(ev.Request.Header), &p)
	}
	*dev = p
	return nil
}

// Parse returns what the user agent says, from the cache when it was
// seen recently. Only the first [runtimeid.MaxUserAgent] bytes are read.
// UserAgent and ID are left empty.
func (d *Device) Parse(ua string) runtimeid.DeviceSignals {
	ua = truncateUA(ua)
	if s, ok := d.cache.Get(ua); ok {
		return s
	}
	s := d.ParseUncached(ua)
	// The key is cloned so the cache never pins a large request
	// buffer the user agent was cut from.
	d.cache.Add(strings.Clone(ua), s)
	return s
}

// Len returns the number of user agents cached, at most
// [DeviceCacheSize].
func (d *Device) Len() int { return d.cache.Len() }

// ParseUncached is Parse without the cache, for measurements.
func (d *Device) ParseUncached(ua string) runtimeid.DeviceSignals {
	ua = truncateUA(ua)
	if strings.TrimSpace(ua) == "" {
		return runtimeid.DeviceSignals{Type: "other"}
	}
	f, folded := uapFilter(), foldUA(ua)
	b, o := f.userAgent(ua, folded), f.osFamily(ua, folded)

	s := runtimeid.DeviceSignals{
		Browser:        browserFamily(b.Family),
		BrowserVersion: b.Major,
		OS:             known(o.Family),
		OSVersion:      joinVersion(o.Major, o.Minor),
		Type:           deviceType(ua),
	}
	if s.Browser == "" {
		s.BrowserVersion = ""
	}
	if s.OS == "" {
		s.OSVersion = ""
	}
	s.Bot = s.Type == "bot"
	return s
}

func truncateUA(ua string) string {
	if len(ua) > runtimeid.MaxUserAgent {
		return ua[:runtimeid.MaxUserAgent]
	}
	return ua
}

// mobileVariants folds uap-core's mobile families into the browser they
// are, so a policy can match "Chrome" on every platform.
var mobileVariants = map[string]string{
	"Chrome Mobile":         "Chrome",
	"Chrome Mobile iOS":     "Chrome",
	"Chrome Mobile WebView": "Chrome WebView",
	"Mobile Safari":         "Safari",
	"Firefox Mobile":        "Firefox",
	"Firefox iOS":           "Firefox",
	"Edge Mobile":           "Edge",
	"IE Mobile":             "IE",
	"Opera Mobile":          "Opera",
}

func browserFamily(f string) string {
	if v, ok := mobileVariants[f]; ok {
		return v
	}
	return known(f)
}

// known maps uap-core's "Other" (no rule matched) to "".
func known(f string) string {
	if f == "Other" {
		return ""
	}
	return f
}

func joinVersion(major, minor string) string {
	if major == "" || minor == "" {
		return major
	}
	return major + "." + minor
}
