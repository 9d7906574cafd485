package signals

import "strings"

// The keyword lists deviceType looks for, in lower case. They were
// tuned against woothee's labelled test sets (see internal/uaeval) and
// are checked in this order: the first list with a match wins.
var (
	// botWords: crawlers name themselves, and most give a URL to
	// their documentation, which browsers never do.
	botWords = []string{
		"bot", "crawler", "spider", "slurp", "preview",
		"http://", "https://", "yahoo pipes",
	}

	// tabletWords: Android tablets send no "Mobile" token, which
	// tabletAndroid checks separately.
	tabletWords = []string{"ipad", "tablet", "kindle", "silk/"}

	// mobileWords include Japanese feature-phone carriers and old
	// phone platforms.
	mobileWords = []string{
		"mobile", "iphone", "ipod", "android", "phone", "docomo",
		"kddi", "softbank", "vodafone", "willcom", "up.browser",
		"j-phone", "symbian", "blackberry", "opera mini",
	}

	desktopWords = []string{"windows", "macintosh", "x11", "linux", "cros"}
)

// deviceType classifies a user agent as "bot", "tablet", "mobile",
// "desktop" or "other" by the keywords it contains.
func deviceType(ua string) string {
	l := strings.ToLower(ua)
	switch {
	case containsAny(l, botWords):
		return "bot"
	case containsAny(l, tabletWords), tabletAndroid(l):
		return "tablet"
	case containsAny(l, mobileWords):
		return "mobile"
	case containsAny(l, desktopWords):
		return "desktop"
	}
	return "other"
}

func tabletAndroid(l string) bool {
	return strings.Contains(l, "android") && !strings.Contains(l, "mobile")
}

func containsAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
