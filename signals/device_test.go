package signals

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

const (
	uaChromeWin = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) " +
		"AppleWebKit/537.36 (KHTML, like Gecko) " +
		"Chrome/124.0.0.0 Safari/537.36"
	uaIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) " +
		"AppleWebKit/605.1.15 (KHTML, like Gecko) " +
		"Version/17.4 Mobile/15E148 Safari/604.1"
	uaAndroidChrome = "Mozilla/5.0 (Linux; Android 14; Pixel 8) " +
		"AppleWebKit/537.36 (KHTML, like Gecko) " +
		"Chrome/124.0.6367.82 Mobile Safari/537.36"
	uaIPad = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) " +
		"AppleWebKit/605.1.15 (KHTML, like Gecko) " +
		"Version/16.6 Mobile/15E148 Safari/604.1"
	uaFirefoxLinux = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) " +
		"Gecko/20100101 Firefox/125.0"
	uaGooglebot = "Mozilla/5.0 (compatible; Googlebot/2.1; " +
		"+http://www.google.com/bot.html)"
	uaCurl = "curl/8.5.0"
)

func TestDeviceParse(t *testing.T) {
	tests := []struct {
		name string
		ua   string
		want runtimeid.DeviceSignals
	}{
		{
			name: "chrome windows", ua: uaChromeWin,
			want: runtimeid.DeviceSignals{
				Browser: "Chrome", BrowserVersion: "124",
				OS: "Windows", OSVersion: "10", Type: "desktop",
			},
		},
		{
			name: "safari iphone", ua: uaIPhone,
			want: runtimeid.DeviceSignals{
				Browser: "Safari", BrowserVersion: "17",
				OS: "iOS", OSVersion: "17.4", Type: "mobile",
			},
		},
		{
			name: "chrome android", ua: uaAndroidChrome,
			want: runtimeid.DeviceSignals{
				Browser: "Chrome", BrowserVersion: "124",
				OS: "Android", OSVersion: "14", Type: "mobile",
			},
		},
		{
			name: "safari ipad", ua: uaIPad,
			want: runtimeid.DeviceSignals{
				Browser: "Safari", BrowserVersion: "16",
				OS: "iOS", OSVersion: "16.6", Type: "tablet",
			},
		},
		{
			name: "firefox ubuntu", ua: uaFirefoxLinux,
			want: runtimeid.DeviceSignals{
				Browser: "Firefox", BrowserVersion: "125",
				OS: "Ubuntu", Type: "desktop",
			},
		},
		{
			name: "googlebot", ua: uaGooglebot,
			want: runtimeid.DeviceSignals{
				Browser: "Googlebot", BrowserVersion: "2",
				Type: "bot", Bot: true,
			},
		},
		{
			name: "curl", ua: uaCurl,
			want: runtimeid.DeviceSignals{
				Browser: "curl", BrowserVersion: "8", Type: "other",
			},
		},
		{name: "empty", ua: "", want: runtimeid.DeviceSignals{Type: "other"}},
		{name: "spaces", ua: "  ", want: runtimeid.DeviceSignals{Type: "other"}},
		{
			name: "garbage", ua: "\x00\xff(;;;",
			want: runtimeid.DeviceSignals{Type: "other"},
		},
	}
	d := NewDevice()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, d.ParseUncached(tt.ua))
			assert.Equal(t, tt.want, d.Parse(tt.ua))
			assert.Equal(t, tt.want, d.Parse(tt.ua), "cached")

			ev := &runtimeid.Evaluation{}
			ev.Signals.Device = runtimeid.DeviceSignals{
				UserAgent: tt.ua, ID: "dev-1", Browser: "stale",
			}
			require.NoError(t, d.Collect(context.Background(), ev))
			want := tt.want
			want.UserAgent, want.ID = tt.ua, "dev-1"
			assert.Equal(t, want, ev.Signals.Device)
		})
	}
}

func TestDeviceCacheBounded(t *testing.T) {
	d := newDevice(16)
	for i := 0; i < 40; i++ {
		d.Parse("agent/" + strings.Repeat("x", i))
	}
	assert.Equal(t, 16, d.cache.Len())
	assert.True(t, d.cache.Contains("agent/"+strings.Repeat("x", 39)))
	assert.False(t, d.cache.Contains("agent/"))

	long := strings.Repeat("A", 10*runtimeid.MaxUserAgent)
	d.Parse(long)
	assert.True(t, d.cache.Contains(long[:runtimeid.MaxUserAgent]))
}

func TestDeviceConcurrent(t *testing.T) {
	d := NewDevice()
	uas := []string{uaChromeWin, uaIPhone, uaGooglebot, uaCurl}
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 50; i++ {
				ev := &runtimeid.Evaluation{}
				ev.Signals.Device.UserAgent = uas[(g+i)%len(uas)]
				_ = d.Collect(context.Background(), ev)
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}

func FuzzDevice(f *testing.F) {
	for _, s := range []string{
		uaChromeWin, uaIPhone, uaIPad, uaGooglebot, uaCurl, "", "\xff",
	} {
		f.Add(s)
	}
	d := NewDevice()
	types := map[string]bool{
		"desktop": true, "mobile": true, "tablet": true,
		"bot": true, "other": true,
	}
	f.Fuzz(func(t *testing.T, ua string) {
		s := d.Parse(ua)
		require.True(t, types[s.Type], s.Type)
		require.Equal(t, s.Type == "bot", s.Bot)
		require.Equal(t, s, d.ParseUncached(ua))
		if utf8.ValidString(ua) {
			require.True(t, utf8.ValidString(s.Browser))
		}
		require.LessOrEqual(t, len(s.Browser), runtimeid.MaxUserAgent)
	})
}

func BenchmarkDevice(b *testing.B) {
	d := NewDevice()
	ctx := context.Background()
	b.Run("cached", func(b *testing.B) {
		ev := &runtimeid.Evaluation{}
		b.ReportAllocs()
		for b.Loop() {
			ev.Signals.Device = runtimeid.DeviceSignals{UserAgent: uaChromeWin}
			_ = d.Collect(ctx, ev)
		}
	})
	// uap-go keeps the last user agent it parsed, so the uncached
	// run cycles through several to miss every time.
	uas := []string{uaChromeWin, uaIPhone, uaAndroidChrome, uaGooglebot}
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			d.ParseUncached(uas[i%len(uas)])
			i++
		}
	})
}

// TestDeviceCacheBound: however many distinct user agents arrive, the
// cache keeps its bound, and what it answers is what a parse gives.
func TestDeviceCacheBound(t *testing.T) {
	d := newDevice(64)
	for i := range 200 {
		d.Parse(fmt.Sprintf("Mozilla/5.0 (X11; Linux x86_64) Firefox/%d.0", i))
	}
	assert.Equal(t, 64, d.Len())
	ua := "Mozilla/5.0 (X11; Linux x86_64) Firefox/199.0"
	assert.Equal(t, d.ParseUncached(ua), d.Parse(ua))
	assert.Equal(t, "Firefox", d.Parse(ua).Browser)
	assert.Equal(t, 64, d.Len())
}
