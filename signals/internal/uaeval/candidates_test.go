package uaeval

import (
	"strings"

	medama "github.com/medama-io/go-useragent"
	"github.com/medama-io/go-useragent/agents"
	mssola "github.com/mssola/useragent"
	"github.com/ua-parser/uap-go/uaparser"

	"github.com/runtimeid/runtimeid/signals"
)

// result is what every candidate is asked for.
type result struct{ Browser, OS, Type string }

type candidate struct {
	name  string
	parse func(ua string) result
}

func candidates() []candidate {
	return []candidate{
		// {name: "signals.Device (uncached)", parse: ours()},
		{name: "signals.Device (uncached)", parse: ours()},
		{name: "ua-parser/uap-go", parse: uapGo()},
		{name: "medama-io/go-useragent", parse: medamaParse()},
		{name: "mssola/useragent", parse: mssolaParse},
	}
}

// ours is the collector itself: uap-go's browser and OS families with
// the keyword device type, which the evaluation showed is both cheaper
// and more accurate than uap-core's device rules.
func ours() func(string) result {
	d := signals.NewDevice()
	return func(ua string) result {
		s := d.ParseUncached(ua)
		return result{s.Browser, s.OS, s.Type}
	}
}

func uapGo() func(string) result {
	// uap-go cannot turn its own cache off (size 0 panics); size 1
	// makes every distinct user agent a miss, as in our measurement.
	p, err := uaparser.New(uaparser.WithCacheSize(1))
	if err != nil {
		panic(err)
	}
	return func(ua string) result {
		b := p.ParseUserAgent(ua)
		o := p.ParseOs(ua)
		d := p.ParseDevice(ua)
		return result{b.Family, o.Family, uapType(o, d)}
	}
}

// uapType guesses a device type from uap-go's OS and device, which is
// all uap-core offers: it has no device type of its own.
func uapType(o *uaparser.Os, d *uaparser.Device) string {
	dev := strings.ToLower(d.Family)
	switch {
	case d.Family == "Spider":
		return "bot"
	case dev == "ipad", strings.Contains(dev, "tablet"),
		strings.HasPrefix(dev, "kindle"):
		return "tablet"
	case strings.HasPrefix(dev, "generic feature phone"),
		strings.HasPrefix(dev, "generic smartphone"):
		return "mobile"
	}
	switch o.Family {
	case "iOS", "Android", "Windows Phone", "BlackBerry OS",
		"Symbian OS", "KaiOS", "Firefox OS":
		return "mobile"
	case "Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS",
		"Fedora", "Debian", "FreeBSD", "OpenBSD", "macOS":
		return "desktop"
	}
	return "other"
}

func medamaParse() func(string) result {
	p := medama.NewParser()
	return func(ua string) result {
		r := p.Parse(ua)
		typ := "other"
		switch r.Device() {
		case agents.DeviceDesktop:
			typ = "desktop"
		case agents.DeviceMobile:
			typ = "mobile"
		case agents.DeviceTablet:
			typ = "tablet"
		case agents.DeviceBot:
			typ = "bot"
		}
		return result{string(r.Browser()), string(r.OS()), typ}
	}
}

func mssolaParse(ua string) result {
	p := mssola.New(ua)
	name, _ := p.Browser()
	os := p.OSInfo().Name
	typ := "other"
	switch {
	case p.Bot():
		typ = "bot"
	case p.Mobile() && strings.Contains(ua, "iPad"):
		typ = "tablet"
	case p.Mobile():
		typ = "mobile"
	case os == "Windows" || os == "Mac OS X" || os == "Linux" ||
		os == "CrOS" || os == "FreeBSD" || os == "Ubuntu":
		typ = "desktop"
	}
	return result{name, os, typ}
}
