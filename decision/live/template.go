package live

// pageHTML is the page's template. html/template escapes every value
// for its context, including the SVG attributes.
const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 20px; color: #1d2330; }
h1 { font-size: 20px; margin: 0 0 12px; }
h2 { font-size: 15px; margin: 20px 0 6px; }
.totals span { display: inline-block; margin-right: 18px; }
.totals b { font-size: 20px; }
.charts { display: flex; gap: 28px; flex-wrap: wrap; }
svg { background: #f6f7f9; border: 1px solid #dde1e7; }
svg text { font-size: 11px; fill: #5a6273; }
rect.allow, .allow b { fill: #3a9a5b; color: #3a9a5b; }
rect.challenge, .challenge b { fill: #e0a020; color: #c08010; }
rect.block, .block b { fill: #d0453a; color: #d0453a; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 3px 10px 3px 0; border-bottom: 1px solid #e8eaee; }
td.num { text-align: right; }
td.o-challenge { color: #c08010; } td.o-block { color: #d0453a; }
.muted { color: #7a8294; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="totals" id="totals" data-total="{{.Snap.Total}}">
<span><b>{{.Snap.Total}}</b> decisions</span>
{{- range .Outcomes}}
<span class="{{.Name}}"><b>{{.Count}}</b> {{.Name}}</span>
{{- end}}
<span class="muted">as of {{clock .Snap.Now}} UTC</span>
</p>
<div class="charts">
<div>
<h2>Outcomes per {{.Bucket}}</h2>
{{template "chart" .Series}}
</div>
<div>
<h2>Risk scores</h2>
{{template "chart" .Scores}}
</div>
</div>
<h2>By rule</h2>
<table id="rules">
<tr><th>rule</th><th>outcome</th><th>count</th></tr>
{{- range .Snap.Rules}}
<tr><td>{{.Rule}}</td><td class="o-{{.Outcome}}">{{.Outcome}}</td><td class="num">{{.Count}}</td></tr>
{{- end}}
</table>
<h2>Recent decisions</h2>
<table id="recent">
<tr><th>time (UTC)</th><th>outcome</th><th>rule</th><th>action</th><th>subject</th>
<th>client</th><th>country</th><th>score</th><th>findings</th></tr>
{{- range .Snap.Recent}}
<tr><td>{{clock .Time}}</td><td class="o-{{.Outcome}}">{{.Outcome}}</td><td>{{.Rule}}</td>
<td>{{.Action}}</td><td>{{orDash .Subject}}</td><td>{{orDash .ClientIP}}</td>
<td>{{orDash .Country}}</td><td class="num">{{score .Score}}</td><td>{{orDash (join .Findings)}}</td></tr>
{{- end}}
</table>
<script nonce="{{.Nonce}}">
(function () {
  var shown = document.getElementById("totals").dataset.total;
  setInterval(function () {
    fetch("?format=json", {cache: "no-store"})
      .then(function (r) { return r.json(); })
      .then(function (s) { if (String(s.total) !== shown) location.reload(); })
      .catch(function () {});
  }, 5000);
})();
</script>
</body>
</html>
{{define "chart"}}<svg width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img">
<text x="4" y="12">max {{.Max}}</text>
{{- range .Bars}}
<rect class="{{.Class}}" x="{{f1 .X}}" y="{{f1 .Y}}"
 width="{{f1 .W}}" height="{{f1 .H}}"><title>{{.Title}}</title></rect>
{{- end}}
{{- range .Labels}}
<text x="{{f1 .X}}" y="{{f1 .Y}}" text-anchor="{{.Anchor}}">{{.Text}}</text>
{{- end}}
</svg>{{end}}
`
