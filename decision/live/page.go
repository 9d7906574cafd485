package live

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// ServeHTTP serves the page, or with ?format=json the [Snapshot]. Only
// GET and HEAD are answered. Responses are never cached and the page
// loads nothing from anywhere: its Content-Security-Policy allows only
// its own inline style and its one script, by nonce.
func (v *View) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")

	snap := v.Snapshot()
	if r.URL.Query().Get("format") == "json" {
		h.Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(snap)
		return
	}
	nonce := newNonce()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "+
		"script-src 'nonce-"+nonce+"'; connect-src 'self'; frame-ancestors 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	page.Execute(w, v.pageData(snap, nonce))
}

func newNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// pageData is what the template draws.
type pageData struct {
	Title    string
	Nonce    string
	Snap     Snapshot
	Outcomes []outcomeTotal
	Series   chart
	Scores   chart
	Bucket   string
}

type outcomeTotal struct {
	Name  string
	Count int
}

// chart is an SVG bar chart, laid out here so the template only draws.
type chart struct {
	Width, Height int
	Max           int
	Bars          []bar
	Labels        []label
}

type bar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type label struct {
	X, Y   float64
	Text   string
	Anchor string
}

var outcomeOrder = []string{"allow", "challenge", "block"}

func (v *View) pageData(s Snapshot, nonce string) pageData {
	d := pageData{Title: v.opts.Title, Nonce: nonce, Snap: s,
		Bucket: short(v.opts.Bucket)}
	for _, o := range outcomeOrder {
		d.Outcomes = append(d.Outcomes, outcomeTotal{o, s.Outcomes[o]})
	}
	d.Series = seriesChart(s.Series)
	d.Scores = scoreChart(s.Scores)
	return d
}

// short writes a whole number of hours or minutes as "1h" or "5m".
func short(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

const (
	chartTop    = 16.0
	chartBottom = 24.0
)

// seriesChart stacks each step's outcomes, allow at the bottom.
func seriesChart(steps []Step) chart {
	c := chart{Width: 720, Height: 220, Max: 1}
	for _, st := range steps {
		c.Max = max(c.Max, st.Outcomes["allow"]+st.Outcomes["challenge"]+st.Outcomes["block"])
	}
	plot := float64(c.Height) - chartTop - chartBottom
	w := float64(c.Width) / float64(max(len(steps), 1))
	for i, st := range steps {
		y := chartTop + plot
		for _, o := range outcomeOrder {
			n := st.Outcomes[o]
			if n == 0 {
				continue
			}
			h := plot * float64(n) / float64(c.Max)
			y -= h
			c.Bars = append(c.Bars, bar{X: float64(i) * w, Y: y, W: max(w-1, 1), H: h,
				Class: o, Title: fmt.Sprintf("%s %s: %d", st.Start.Format("15:04"), o, n)})
		}
	}
	if len(steps) > 0 {
		base := float64(c.Height) - 6
		c.Labels = []label{
			{0, base, steps[0].Start.Format("Jan 2 15:04"), "start"},
			{float64(c.Width), base, steps[len(steps)-1].Start.Format("15:04 MST"), "end"},
		}
	}
	return c
}

func scoreChart(bins [ScoreBins]int) chart {
	c := chart{Width: 360, Height: 220, Max: 1}
	for _, n := range bins {
		c.Max = max(c.Max, n)
	}
	plot := float64(c.Height) - chartTop - chartBottom
	w := float64(c.Width) / ScoreBins
	for i, n := range bins {
		lo := float64(i) / ScoreBins
		class := "allow"
		switch {
		case lo >= 0.7:
			class = "block"
		case lo >= 0.3:
			class = "challenge"
		}
		h := plot * float64(n) / float64(c.Max)
		c.Bars = append(c.Bars, bar{X: float64(i) * w, Y: chartTop + plot - h, W: w - 2, H: h,
			Class: class, Title: fmt.Sprintf("%.1f-%.1f: %d", lo, lo+0.1, n)})
		c.Labels = append(c.Labels, label{float64(i)*w + w/2, float64(c.Height) - 6,
			fmt.Sprintf("%.1f", lo), "middle"})
	}
	return c
}

var funcs = template.FuncMap{
	"f1":     func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"score":  func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"join":   func(s []string) string { return strings.Join(s, ", ") },
	"clock":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"orDash": orDash,
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

var page = template.Must(template.New("page").Funcs(funcs).Parse(pageHTML))
