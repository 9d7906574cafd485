package signals

import (
	"net/http"
	"strings"

	"github.com/runtimeid/runtimeid"
)

// The limits on User-Agent Client Hints. They bound the work a client
// can cause with long or repeated hint headers; a header over a limit
// is ignored as a whole.
const (
	// MaxClientHintBytes is the largest hint header read, all its
	// lines together. Real Sec-CH-UA values are under 120 bytes.
	MaxClientHintBytes = 512

	// MaxClientHintBrands is how many brands a Sec-CH-UA list may
	// hold.
	MaxClientHintBrands = 16

	// maxHintString caps one brand, version or platform.
	maxHintString = 64
)

// ClientHints is what a browser's low-entropy User-Agent Client Hints
// say: the Sec-CH-UA, Sec-CH-UA-Platform and Sec-CH-UA-Mobile request
// headers that Chromium-based browsers send on every secure request.
// Like the user agent, they are whatever the client sent.
//
// Precedence: for a Chromium-based browser (or an unknown one) the
// hints win over the user agent, because Chrome has frozen its user
// agent since version 101 ("User-Agent reduction"): the minor version,
// the OS version and the device model in it are constants. The brand
// and version replace the browser, the platform replaces the OS (and
// drops the OS version when the family changes), and Sec-CH-UA-Mobile
// decides between mobile and not. When the user agent names a browser
// that does not send hints (Firefox, Safari), hints are a forgery or a
// proxy's mistake and are ignored. A bot stays a bot.
type ClientHints struct {
	// Brand is the most specific brand, in uap-core's naming
	// ("Chrome", "Edge", "Opera", "Brave"), or "Chromium" when that
	// is all the list names; "" without a usable Sec-CH-UA. GREASE
	// brands ("Not-A.Brand") are skipped.
	Brand string

	// BrandVersion is the brand's major version.
	BrandVersion string

	// Platform is Sec-CH-UA-Platform in uap-core's OS naming
	// ("Windows", "Mac OS X", "Android", "Chrome OS"), "" when absent
	// or "Unknown".
	Platform string

	// Mobile is Sec-CH-UA-Mobile, valid when HasMobile.
	Mobile    bool
	HasMobile bool
}

// brandNames maps Sec-CH-UA brands to uap-core's browser families.
var brandNames = map[string]string{
	"Google Chrome":    "Chrome",
	"Microsoft Edge":   "Edge",
	"Opera GX":         "Opera",
	"Yandex":           "Yandex Browser",
	"YaBrowser":        "Yandex Browser",
	"Android WebView":  "Chrome WebView",
	"Samsung Internet": "Samsung Internet",
}

// platformNames maps Sec-CH-UA-Platform values to uap-core's OS
// families.
var platformNames = map[string]string{
	"macOS":       "Mac OS X",
	"Chromium OS": "Chrome OS",
	"Unknown":     "",
}

// chromiumFamilies are the browser families, as [Device] reports them,
// that are built on Chromium and so may send client hints.
var chromiumFamilies = map[string]bool{
	"Chrome": true, "Chromium": true, "Chrome WebView": true,
	"Edge": true, "Opera": true, "Brave": true, "Vivaldi": true,
	"Yandex Browser": true, "Samsung Internet": true,
	"HeadlessChrome": true, "Whale": true, "Silk": true,
}

// ParseClientHints reads the low-entropy client hints from h. Each
// header is parsed as an RFC 8941 structured field; one that does not
// parse, is over [MaxClientHintBytes] or lists more than
// [MaxClientHintBrands] brands is ignored, as RFC 8941 asks of a field
// that fails to parse.
func ParseClientHints(h http.Header) ClientHints {
	var c ClientHints
	if v, ok := hintField(h, "Sec-Ch-Ua"); ok {
		c.Brand, c.BrandVersion = pickBrand(v)
	}
	if v, ok := hintField(h, "Sec-Ch-Ua-Platform"); ok {
		if items, ok := parseSFList(v); ok && len(items) == 1 &&
			items[0].isString {
			c.Platform = platformName(items[0].value)
		}
	}
	if v, ok := hintField(h, "Sec-Ch-Ua-Mobile"); ok {
		switch strings.TrimSpace(v) {
		case "?1":
			c.Mobile, c.HasMobile = true, true
		case "?0":
			c.HasMobile = true
		}
	}
	return c
}

// hintField joins the lines of a header with commas (RFC 8941 section
// 4.2), unless together they exceed MaxClientHintBytes.
func hintField(h http.Header, name string) (string, bool) {
	vals := h[name]
	n := 0
	for _, v := range vals {
		n += len(v) + 1
	}
	if len(vals) == 0 || n > MaxClientHintBytes {
		return "", false
	}
	return strings.Join(vals, ","), true
}

// pickBrand returns the most specific brand of a Sec-CH-UA list: the
// first that is neither GREASE nor "Chromium", else "Chromium".
func pickBrand(field string) (brand, version string) {
	items, ok := parseSFList(field)
	if !ok || len(items) > MaxClientHintBrands {
		return "", ""
	}
	for _, it := range items {
		if !it.isString || isGrease(it.value) {
			continue
		}
		if brand == "" || brand == "Chromium" {
			brand, version = it.value, majorVersion(it.v)
		}
	}
	if b, ok := brandNames[brand]; ok {
		brand = b
	}
	if brand == "" {
		version = ""
	}
	return brand, version
}

// isGrease reports whether a brand is one Chromium invents to keep
// servers from depending on the list's order and content (the
// "GREASE" of the UA-CH draft): "Not A;Brand", "Not-A.Brand",
// "Not)A;Brand" and so on, letters "NotABrand" among punctuation.
func isGrease(brand string) bool {
	var b strings.Builder
	for i := 0; i < len(brand); i++ {
		if c := brand[i]; c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' {
			b.WriteByte(c | 0x20)
		}
	}
	return b.String() == "notabrand"
}

func platformName(p string) string {
	if n, ok := platformNames[p]; ok {
		return n
	}
	return p
}

// majorVersion returns the digits before the first dot, or "" when
// there are none.
func majorVersion(v string) string {
	i := 0
	for i < len(v) && isDigit(v[i]) {
		i++
	}
	return v[:i]
}

// applyHints refines what the user agent said with what the hints
// say, as [ClientHints] documents.
//
// BUG: the OS version of a Chromium browser stays what the frozen user
// agent says ("10" on every Android, "10.15" on every macOS). The real
// one is in the high-entropy Sec-CH-UA-Platform-Version hint, which a
// browser sends only to a server that asked for it with Accept-CH, and
// which this collector does not read yet.
func applyHints(c ClientHints, s *runtimeid.DeviceSignals) {
	if s.Browser != "" && !chromiumFamilies[s.Browser] {
		return
	}
	if c.Brand != "" {
		s.Browser, s.BrowserVersion = c.Brand, c.BrandVersion
	}
	if c.Platform != "" && c.Platform != s.OS {
		s.OS, s.OSVersion = c.Platform, ""
	}
	if s.Bot || !c.HasMobile {
		return
	}
	switch {
	case c.Mobile:
		s.Type = "mobile"
	case s.Type == "mobile" && s.OS == "Android":
		s.Type = "tablet"
	case s.Type == "mobile", s.Type == "other" && desktopOS[s.OS]:
		s.Type = "desktop"
	}
}

// desktopOS are the platforms a browser that says it is not mobile
// runs on as a desktop.
var desktopOS = map[string]bool{
	"Windows": true, "Mac OS X": true, "Linux": true, "Chrome OS": true,
}
