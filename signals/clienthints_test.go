package signals

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// Real Sec-CH-UA values, as the browsers named send them.
const (
	chChrome124 = `"Chromium";v="124", "Google Chrome";v="124", ` +
		`"Not-A.Brand";v="99"`
	chEdge124 = `"Chromium";v="124", "Microsoft Edge";v="124", ` +
		`"Not-A.Brand";v="99"`
	chBrave = `"Chromium";v="124", "Brave";v="124", "Not-A.Brand";v="99"`
	chOpera = `"Opera";v="109", "Not:A-Brand";v="8", "Chromium";v="123"`
	// Chrome on Android lists its own brand first.
	chChromeAndroid = `"Google Chrome";v="125", "Chromium";v="125", ` +
		`"Not.A/Brand";v="24"`
	// Chrome 89 used a GREASE brand with a leading space.
	chChrome89 = `" Not A;Brand";v="99", "Chromium";v="89", ` +
		`"Google Chrome";v="89"`
	chSamsung = `"Chromium";v="122", "Not(A:Brand";v="24", ` +
		`"Samsung Internet";v="25.0"`
	chChromiumOnly = `"Chromium";v="120", "Not_A Brand";v="8"`

	// Chrome's reduced user agent on Android: "Android 10; K" always.
	uaChromeReducedAndroid = "Mozilla/5.0 (Linux; Android 10; K) " +
		"AppleWebKit/537.36 (KHTML, like Gecko) " +
		"Chrome/125.0.0.0 Mobile Safari/537.36"
	uaEdgeWin   = uaChromeWin + " Edg/124.0.0.0"
	uaChromeMac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) " +
		"AppleWebKit/537.36 (KHTML, like Gecko) " +
		"Chrome/124.0.0.0 Safari/537.36"
)

func TestParseClientHints(t *testing.T) {
	tests := []struct {
		name                string
		ua, platform, mobil string
		want                ClientHints
	}{
		{
			name: "chrome windows", ua: chChrome124,
			platform: `"Windows"`, mobil: "?0",
			want: ClientHints{
				Brand: "Chrome", BrandVersion: "124",
				Platform: "Windows", HasMobile: true,
			},
		},
		{
			name: "edge", ua: chEdge124, platform: `"Windows"`,
			want: ClientHints{
				Brand: "Edge", BrandVersion: "124", Platform: "Windows",
			},
		},
		{
			name: "brave", ua: chBrave,
			want: ClientHints{Brand: "Brave", BrandVersion: "124"},
		},
		{
			name: "opera", ua: chOpera,
			want: ClientHints{Brand: "Opera", BrandVersion: "109"},
		},
		{
			name: "chrome android", ua: chChromeAndroid,
			platform: `"Android"`, mobil: "?1",
			want: ClientHints{
				Brand: "Chrome", BrandVersion: "125",
				Platform: "Android", Mobile: true, HasMobile: true,
			},
		},
		{
			name: "chrome 89", ua: chChrome89, platform: `"macOS"`,
			want: ClientHints{
				Brand: "Chrome", BrandVersion: "89", Platform: "Mac OS X",
			},
		},
		{
			name: "samsung", ua: chSamsung,
			want: ClientHints{Brand: "Samsung Internet", BrandVersion: "25"},
		},
		{
			name: "chromium only", ua: chChromiumOnly,
			platform: `"Chromium OS"`,
			want: ClientHints{
				Brand: "Chromium", BrandVersion: "120",
				Platform: "Chrome OS",
			},
		},
		{name: "grease only", ua: `"Not A(Brand";v="99"`},
		{name: "unknown platform", platform: `"Unknown"`},
		{name: "platform with parameter", platform: `"Linux";x=1`,
			want: ClientHints{Platform: "Linux"}},
		{name: "platform token", platform: `Windows`},
		{name: "platform list", platform: `"Windows", "Linux"`},
		{
			name: "no version", ua: `"Google Chrome"`,
			want: ClientHints{Brand: "Chrome"},
		},
		{
			name: "version token", ua: `"Google Chrome";v=124`,
			want: ClientHints{Brand: "Chrome"},
		},
		{
			name: "escaped quote", ua: `"My \"Browser\"";v="3.1"`,
			want: ClientHints{Brand: `My "Browser"`, BrandVersion: "3"},
		},
		{name: "trailing comma", ua: chChrome124 + ","},
		{name: "unterminated", ua: `"Chromium;v="124"`},
		{name: "control char", ua: "\"Chro\x01me\";v=\"1\""},
		{name: "bad escape", ua: `"Chr\ome";v="1"`},
		{name: "inner list", ua: `("Chromium");v="1"`},
		{name: "mobile garbage", mobil: "?2"},
		{name: "mobile true word", mobil: "true"},
		{name: "too long", ua: `"` + strings.Repeat("a", 600) + `"`},
		{name: "brand too long", ua: `"` + strings.Repeat("a", 65) + `"`},
		{
			name: "too many brands",
			ua:   strings.Repeat(`"A";v="1", `, 16) + `"B";v="2"`,
		},
		{
			name: "sixteen brands",
			ua:   strings.Repeat(`"A";v="1", `, 15) + `"B";v="2"`,
			want: ClientHints{Brand: "A", BrandVersion: "1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			set := func(k, v string) {
				if v != "" {
					h.Set(k, v)
				}
			}
			set("Sec-CH-UA", tt.ua)
			set("Sec-CH-UA-Platform", tt.platform)
			set("Sec-CH-UA-Mobile", tt.mobil)
			assert.Equal(t, tt.want, ParseClientHints(h))
		})
	}
}

// Several lines of one header are one list (RFC 8941 section 4.2).
func TestParseClientHintsLines(t *testing.T) {
	h := http.Header{}
	h.Add("Sec-CH-UA", `"Chromium";v="124"`)
	h.Add("Sec-CH-UA", `"Microsoft Edge";v="124"`)
	assert.Equal(t, ClientHints{Brand: "Edge", BrandVersion: "124"},
		ParseClientHints(h))

	// The lines together count against the limit.
	h.Add("Sec-CH-UA", strings.Repeat(" ", MaxClientHintBytes))
	assert.Equal(t, ClientHints{}, ParseClientHints(h))
}

func TestDeviceClientHints(t *testing.T) {
	type hints struct{ ua, platform, mobile string }
	tests := []struct {
		name  string
		ua    string
		hints hints
		want  runtimeid.DeviceSignals
		noReq bool
	}{
		{
			name: "edge from hints", ua: uaChromeWin,
			hints: hints{chEdge124, `"Windows"`, "?0"},
			want: runtimeid.DeviceSignals{
				Browser: "Edge", BrowserVersion: "124",
				OS: "Windows", OSVersion: "10", Type: "desktop",
			},
		},
		{
			name: "edge agrees", ua: uaEdgeWin,
			hints: hints{chEdge124, `"Windows"`, "?0"},
			want: runtimeid.DeviceSignals{
				Browser: "Edge", BrowserVersion: "124",
				OS: "Windows", OSVersion: "10", Type: "desktop",
			},
		},
		{
			name: "brave looks like chrome", ua: uaChromeMac,
			hints: hints{chBrave, `"macOS"`, "?0"},
			want: runtimeid.DeviceSignals{
				Browser: "Brave", BrowserVersion: "124",
				OS: "Mac OS X", OSVersion: "10.15", Type: "desktop",
			},
		},
		{
			name: "reduced android", ua: uaChromeReducedAndroid,
			hints: hints{chChromeAndroid, `"Android"`, "?1"},
			want: runtimeid.DeviceSignals{
				Browser: "Chrome", BrowserVersion: "125",
				OS: "Android", OSVersion: "10", Type: "mobile",
			},
		},
		{
			name:  "android tablet says not mobile",
			ua:    uaChromeReducedAndroid,
			hints: hints{chChromeAndroid, `"Android"`, "?0"},
			want: runtimeid.DeviceSignals{
				Browser: "Chrome", BrowserVersion: "125",
				OS: "Android", OSVersion: "10", Type: "tablet",
			},
		},
		{
			name: "platform changes the os", ua: uaChromeWin,
			hints: hints{chChrome124, `"Linux"`, ""},
			want: runtimeid.DeviceSignals{
				Browser: "Chrome", BrowserVersion: "124",
				OS: "Linux", Type: "desktop",
			},
		},
		{
			name: "mobile hint on desktop ua", ua: uaChromeWin,
			hints: hints{"", "", "?1"},
			want: runtimeid.DeviceSignals{
				Browser: "Chrome", BrowserVersion: "124",
				OS: "Windows", OSVersion: "10", Type: "mobile",
			},
		},
		{
			name: "no user agent", ua: "",
			hints: hints{chChrome124, `"Windows"`, "?0"},
			want: runtimeid.DeviceSignals{
				Browser: "Chrome", BrowserVersion: "124",
				OS: "Windows", Type: "desktop",
			},
		},
		{
			name: "firefox ignores hints", ua: uaFirefoxLinux,
			hints: hints{chChrome124, `"Windows"`, "?1"},
			want: runtimeid.DeviceSignals{
				Browser: "Firefox", BrowserVersion: "125",
				OS: "Ubuntu", Type: "desktop",
			},
		},
		{
			name: "safari ignores hints", ua: uaIPhone,
			hints: hints{chChrome124, `"Windows"`, "?0"},
			want: runtimeid.DeviceSignals{
				Browser: "Safari", BrowserVersion: "17",
				OS: "iOS", OSVersion: "17.4", Type: "mobile",
			},
		},
		{
			name: "bot stays a bot", ua: uaChromeWin + " (link preview)",
			hints: hints{chChrome124, `"Linux"`, "?1"},
			want: runtimeid.DeviceSignals{
				Browser: "Chrome", BrowserVersion: "124",
				OS: "Linux", Type: "bot", Bot: true,
			},
		},
		{
			name: "no request", ua: uaChromeWin, noReq: true,
			want: runtimeid.DeviceSignals{
				Browser: "Chrome", BrowserVersion: "124",
				OS: "Windows", OSVersion: "10", Type: "desktop",
			},
		},
	}
	d := NewDevice()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &runtimeid.Evaluation{}
			ev.Signals.Device.UserAgent = tt.ua
			if !tt.noReq {
				r := httptest.NewRequest("GET", "https://app.test/", nil)
				for k, v := range map[string]string{
					"Sec-CH-UA":          tt.hints.ua,
					"Sec-CH-UA-Platform": tt.hints.platform,
					"Sec-CH-UA-Mobile":   tt.hints.mobile,
				} {
					if v != "" {
						r.Header.Set(k, v)
					}
				}
				ev.Request = r
			}
			require.NoError(t, d.Collect(context.Background(), ev))
			want := tt.want
			want.UserAgent = tt.ua
			assert.Equal(t, want, ev.Signals.Device)
		})
	}
}

func FuzzParseClientHints(f *testing.F) {
	for _, s := range []string{
		chChrome124, chOpera, chChrome89, chSamsung, `"Windows"`, "?1",
		`"a";v="1";x;y=?0;z=:aGk=:, b;q=-1.5`, `("a")`, `"\"`, ",",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{
			"Sec-Ch-Ua":          {s},
			"Sec-Ch-Ua-Platform": {s},
			"Sec-Ch-Ua-Mobile":   {s},
		}
		c := ParseClientHints(h)
		require.LessOrEqual(t, len(c.Brand), maxHintString)
		require.LessOrEqual(t, len(c.BrandVersion), maxHintString)
		require.LessOrEqual(t, len(c.Platform), maxHintString)
		items, ok := parseSFList(s)
		if !ok {
			require.Nil(t, items)
		}
		require.LessOrEqual(t, len(items), MaxClientHintBrands+1)
		for _, it := range items {
			if it.isString {
				require.NotContains(t, it.value, "\x00")
			}
		}
	})
}

func BenchmarkDeviceClientHints(b *testing.B) {
	d := NewDevice()
	r := httptest.NewRequest("GET", "https://app.test/", nil)
	r.Header.Set("Sec-CH-UA", chChrome124)
	r.Header.Set("Sec-CH-UA-Platform", `"Windows"`)
	r.Header.Set("Sec-CH-UA-Mobile", "?0")
	ctx := context.Background()
	b.Run("parse hints", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ParseClientHints(r.Header)
		}
	})
	b.Run("collect cached with hints", func(b *testing.B) {
		ev := &runtimeid.Evaluation{Request: r}
		b.ReportAllocs()
		for b.Loop() {
			ev.Signals.Device = runtimeid.DeviceSignals{UserAgent: uaChromeWin}
			_ = d.Collect(ctx, ev)
		}
	})
}
