package main

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/runtimeid/runtimeid"
)

// logLine matches the Apache combined log format: address, time,
// and the user agent in the last quoted field.
var logLine = regexp.MustCompile(
	`^(\S+) \S+ \S+ \[([^\]]+)\] "[^"]*" \d+ \S+ "[^"]*" "([^"]*)"`)

// hit is one line of the access log.
type hit struct {
	addr netip.Addr
	time time.Time
	ua   string
}

// parseLog reads the access log, skipping lines it cannot parse.
func parseLog(r io.Reader) ([]hit, error) {
	var hits []hit
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := logLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		addr, err := netip.ParseAddr(m[1])
		if err != nil {
			continue
		}
		t, err := time.Parse("02/Jan/2006:15:04:05 -0700", m[2])
		if err != nil {
			continue
		}
		hits = append(hits, hit{addr: addr, time: t.UTC(), ua: m[3]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("riskeval: read log: %w", err)
	}
	return hits, nil
}

// isBot says whether a user agent is a crawler, feed reader or script:
// those are not people who log in, so they build no user.
func isBot(ua string) bool {
	l := strings.ToLower(ua)
	if !strings.HasPrefix(l, "mozilla/") && !strings.HasPrefix(l, "opera") {
		return true
	}
	for _, w := range []string{"bot", "spider", "crawl", "slurp", "feed",
		"ezooms", "http://", "https://"} {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

// client is one real client address of the log with its page views:
// hits less than actionGap apart are one action, as a page and its
// images are one visit.
type client struct {
	addr    netip.Addr
	actions []hit
}

const actionGap = 30 * time.Second

func buildClients(hits []hit) (clients []*client, bots int) {
	byAddr := map[netip.Addr]*client{}
	botAddr := map[netip.Addr]bool{}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].time.Before(hits[j].time) })
	for _, h := range hits {
		if isBot(h.ua) {
			botAddr[h.addr] = true
			continue
		}
		c := byAddr[h.addr]
		if c == nil {
			c = &client{addr: h.addr}
			byAddr[h.addr] = c
			clients = append(clients, c)
		}
		n := len(c.actions)
		if n > 0 && h.time.Sub(c.actions[n-1].time) < actionGap &&
			c.actions[n-1].ua == h.ua {
			continue
		}
		c.actions = append(c.actions, h)
	}
	for a := range botAddr {
		if byAddr[a] == nil {
			bots++
		}
	}
	return clients, bots
}

// The synthetic geography. The MaxMind test databases cover almost
// none of the log's addresses, so each real address gets a home by
// hashing its /16: the country from a fixed distribution shaped like
// a global web audience, the network (AS) from the /16 too, so that
// addresses of one /16 share a network as they often do, and a
// position near the country's centre that depends on the /24.
type country struct {
	code     string
	lat, lon float64
	share    int // per thousand
}

var countries = []country{
	{"US", 39.8, -98.6, 300}, {"DE", 51.2, 10.4, 80}, {"GB", 54.0, -2.0, 70},
	{"FR", 46.6, 2.2, 60}, {"IN", 21.0, 78.0, 60}, {"BR", -10.0, -52.0, 50},
	{"CN", 35.0, 103.0, 50}, {"RU", 56.0, 38.0, 50}, {"JP", 36.0, 138.0, 40},
	{"CA", 56.0, -106.0, 40}, {"NL", 52.1, 5.3, 30}, {"SE", 62.0, 15.0, 20},
	{"ES", 40.0, -4.0, 30}, {"IT", 42.8, 12.8, 30}, {"AU", -25.0, 134.0, 30},
	{"PL", 52.0, 19.0, 20}, {"UA", 49.0, 32.0, 20}, {"KR", 36.5, 127.9, 20},
}

func hash(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func prefix(a netip.Addr, bits int) string {
	p, _ := a.Prefix(bits)
	return p.String()
}

func countryFor(a netip.Addr) country {
	n := int(hash("country", prefix(a, 16)) % 1000)
	for _, c := range countries {
		if n < c.share {
			return c
		}
		n -= c.share
	}
	return countries[0]
}

// homeNetwork is the synthetic geolocation of a real client address.
func homeNetwork(a netip.Addr) runtimeid.NetworkSignals {
	c := countryFor(a)
	h := hash("pos", prefix(a, 24))
	return runtimeid.NetworkSignals{
		Country:     c.code,
		Latitude:    c.lat + float64(h%200)/100 - 1,
		Longitude:   c.lon + float64(h/200%200)/100 - 1,
		AccuracyKM:  20,
		HasLocation: true,
		ASN:         uint(1000 + hash("asn", prefix(a, 16))%60000),
	}
}

// device parses a user agent coarsely: browser family and major
// version, OS family and version, and device type. It knows the
// browsers of the log (2015) and nothing more; the signals package
// does this properly.
var (
	reChrome  = regexp.MustCompile(`(?:Chrome|CriOS)/(\d+)`)
	reFirefox = regexp.MustCompile(`Firefox/(\d+)`)
	reMSIE    = regexp.MustCompile(`MSIE (\d+)|Trident/.*rv:(\d+)`)
	reSafari  = regexp.MustCompile(`Version/(\d+).*Safari/`)
	reOpera   = regexp.MustCompile(`(?:Opera|OPR)/(\d+)`)
	reWindows = regexp.MustCompile(`Windows NT (\d+\.\d+)`)
	reMac     = regexp.MustCompile(`Mac OS X (\d+)[._](\d+)`)
	reIOS     = regexp.MustCompile(`OS (\d+)_\d+ like Mac OS X`)
	reAndroid = regexp.MustCompile(`Android (\d+)`)
)

func device(ua string) runtimeid.DeviceSignals {
	d := runtimeid.DeviceSignals{UserAgent: ua, Type: "desktop"}
	first := func(re *regexp.Regexp) (string, bool) {
		m := re.FindStringSubmatch(ua)
		if m == nil {
			return "", false
		}
		for _, g := range m[1:] {
			if g != "" {
				return g, true
			}
		}
		return "", true
	}
	switch v, ok := first(reOpera); {
	case ok:
		d.Browser, d.BrowserVersion = "Opera", v
	default:
		if v, ok := first(reChrome); ok {
			d.Browser, d.BrowserVersion = "Chrome", v
		} else if v, ok := first(reFirefox); ok {
			d.Browser, d.BrowserVersion = "Firefox", v
		} else if v, ok := first(reMSIE); ok {
			d.Browser, d.BrowserVersion = "IE", v
		} else if v, ok := first(reSafari); ok {
			d.Browser, d.BrowserVersion = "Safari", v
		} else {
			d.Browser = "Other"
		}
	}
	switch {
	case strings.Contains(ua, "iPad"):
		d.OS, d.Type = "iOS", "tablet"
		d.OSVersion, _ = first(reIOS)
	case strings.Contains(ua, "iPhone"):
		d.OS, d.Type = "iOS", "mobile"
		d.OSVersion, _ = first(reIOS)
	case strings.Contains(ua, "Android"):
		d.OS, d.Type = "Android", "mobile"
		d.OSVersion, _ = first(reAndroid)
	case strings.Contains(ua, "Windows"):
		d.OS = "Windows"
		d.OSVersion, _ = first(reWindows)
	case strings.Contains(ua, "Mac OS X"):
		d.OS = "Mac OS X"
		if m := reMac.FindStringSubmatch(ua); m != nil {
			d.OSVersion = m[1] + "." + m[2]
		}
	case strings.Contains(ua, "Linux"):
		d.OS = "Linux"
	default:
		d.OS = "Other"
	}
	return d
}

// bumpMajor returns ua with the browser's major version one higher:
// the update every browser ships every few weeks.
func bumpMajor(ua string) string {
	for _, re := range []*regexp.Regexp{reChrome, reFirefox, reSafari} {
		loc := re.FindStringSubmatchIndex(ua)
		if loc == nil {
			continue
		}
		var v int
		fmt.Sscan(ua[loc[2]:loc[3]], &v)
		return ua[:loc[2]] + fmt.Sprint(v+1) + ua[loc[3]:]
	}
	return ua
}
