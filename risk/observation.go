package risk

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"strings"
	"time"

	"github.com/runtimeid/runtimeid"
)

// MaxSubjectLen is the longest subject kept as a store key as it is.
// OpenID Connect Core section 2 caps sub at 255 ASCII characters;
// a longer subject is keyed by its SHA-256 instead, so no token can
// make a key of unbounded size.
const MaxSubjectLen = 255

// maxAccuracyKM is half the Earth's circumference: no radius of
// uncertainty is larger, and the cap keeps profiles free of infinities.
const maxAccuracyKM = 20000

// maxLabel bounds the browser and OS names quoted in a detail.
const maxLabel = 32

// observation is what one evaluation says about the subject, in the
// form a [Profile] keeps.
type observation struct {
	time        time.Time
	device      uint64
	hasDevice   bool
	country     string // empty when unknown
	asn         uint32 // zero when unknown
	location    Location
	hasLocation bool
}

func observe(ev *runtimeid.Evaluation) observation {
	o := observation{time: ev.Time.UTC()}
	o.device, o.hasDevice = deviceKey(&ev.Signals.Device)
	net := &ev.Signals.Network
	o.country = countryCode(net.Country)
	if net.ASN <= math.MaxUint32 {
		o.asn = uint32(net.ASN)
	}
	o.location, o.hasLocation = location(net, o.time)
	o.location.Country = o.country
	return o
}

// subjectKey is the store key of the identity's subject, or false for
// an unauthenticated evaluation.
//
// BUG: the issuer is not part of the key, so two issuers that assign
// the same sub share a baseline. The engine accepts one issuer today.
func subjectKey(id *runtimeid.Identity) (string, bool) {
	if id == nil || id.Subject == "" {
		return "", false
	}
	if len(id.Subject) <= MaxSubjectLen {
		return id.Subject, true
	}
	sum := sha256.Sum256([]byte(id.Subject))
	return "sha256:" + hex.EncodeToString(sum[:]), true
}

// deviceKey hashes the device ID, or failing that the parts of the
// user agent that change only when the device does. The raw user
// agent is left out on purpose: a browser's minor update changes it
// but is not a new device. The hash keeps device cookies out of the
// profile, and SHA-256 keeps anyone from choosing an ID or user agent
// that lands on a known device's key.
//
// TODO: the major version is part of the key as specified, so every
// browser's major update (every four weeks for Chrome and Firefox)
// makes a known device look new once. Treating a higher major version
// of a known browser, OS and type as the same device would fix it.
func deviceKey(d *runtimeid.DeviceSignals) (uint64, bool) {
	var parts []string
	switch {
	case d.ID != "":
		parts = []string{"id", d.ID}
	case d.Browser != "" || d.OS != "" || d.Type != "":
		parts = []string{"ua", d.Browser, major(d.BrowserVersion), d.OS, d.Type}
	default:
		return 0, false
	}
	h := sha256.New()
	for _, p := range parts {
		// The length prefix keeps ("ab","c") apart from ("a","bc").
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0])), true
}

// major returns a version's major part: "120.0.6099" gives "120". The
// root package promises the major version only; this makes sure.
func major(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '.'); i >= 0 {
		return v[:i]
	}
	return v
}

// countryCode returns an ISO 3166-1 alpha-2 code in upper case, or ""
// for anything else.
func countryCode(c string) string {
	if len(c) != 2 {
		return ""
	}
	var b [2]byte
	for i := range 2 {
		switch ch := c[i]; {
		case 'A' <= ch && ch <= 'Z':
			b[i] = ch
		case 'a' <= ch && ch <= 'z':
			b[i] = ch - 'a' + 'A'
		default:
			return ""
		}
	}
	if b[0] == c[0] && b[1] == c[1] {
		return c
	}
	return string(b[:])
}

// location returns the network's position when it is a real one.
func location(n *runtimeid.NetworkSignals, t time.Time) (Location, bool) {
	lat, lon := n.Latitude, n.Longitude
	if !n.HasLocation || !(lat >= -90 && lat <= 90) ||
		!(lon >= -180 && lon <= 180) {
		return Location{}, false
	}

	// An unknown or nonsensical radius counts as exact, which makes
	// the travel check stricter rather than blind.
	acc := n.AccuracyKM
	if !(acc > 0) {
		acc = 0
	}
	acc = min(acc, maxAccuracyKM)
	return Location{Latitude: lat, Longitude: lon, AccuracyKM: acc, Time: t}, true
}

// label shortens a name from a user agent parser for a detail.
func label(s string) string {
	if len(s) > maxLabel {
		s = s[:maxLabel]
	}
	return strings.ToValidUTF8(s, "")
}
