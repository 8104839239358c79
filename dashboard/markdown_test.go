package dashboard

import (
	"regexp"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/planner"
)

// htmlTagRE finds the tags of rendered HTML: name and attributes.
var htmlTagRE = regexp.MustCompile(`<(/?)([A-Za-z][A-Za-z0-9]*)([^>]*)>`)

// The attributes checkOnlySafeTags allows: a table cell's alignment, a
// link's http(s) href.
var (
	alignAttrRE = regexp.MustCompile(`^ align="(left|right|center)"$`)
	hrefAttrRE  = regexp.MustCompile(`^ href="(https?://[^"<>]*)?"$`)
)

// checkOnlySafeTags fails unless every tag of out is one goldmark writes
// for Markdown or one of the planner's kept tags, with no attribute but
// <details open>, a table cell's alignment or a link's http(s) href; and
// unless no '<' starts anything else (a comment, a script's text).
func checkOnlySafeTags(t *testing.T, out string) {
	t.Helper()
	elements := map[string]bool{"p": true, "strong": true, "em": true, "code": true, "pre": true, "table": true, "thead": true, "tbody": true,
		"tr": true, "th": true, "td": true, "h1": true, "h2": true, "h3": true, "h4": true, "ul": true, "ol": true, "li": true,
		"details": true, "summary": true, "b": true, "br": true, "a": true, "hr": true, "blockquote": true}
	for _, m := range htmlTagRE.FindAllStringSubmatch(out, -1) {
		name, attrs := strings.ToLower(m[2]), m[3]
		ok := elements[name] && (attrs == "" ||
			name == "details" && attrs == " open" ||
			(name == "th" || name == "td") && alignAttrRE.MatchString(attrs) ||
			name == "a" && hrefAttrRE.MatchString(attrs))
		if !ok {
			t.Errorf("rendered plan has the tag %q:\n%s", m[0], out)
		}
	}
	if n, tags := strings.Count(out, "<"), len(htmlTagRE.FindAllString(out, -1)); n != tags {
		t.Errorf("rendered plan has %d '<' but %d tags:\n%s", n, tags, out)
	}
}

// The pull requests page renders a plan's Markdown as HTML: headings,
// emphasis, code and tables become elements, and the planner's own
// <details>, <summary>, <b>, <code> and <br> stay; script, images, event
// handlers, javascript: links and any other raw HTML come out as text, and
// an unpaired tag cannot close or open the page's elements.
func TestPlanHTML(t *testing.T) {
	xss := []string{`<script>alert(1)</script>`, `<img src=x onerror=alert(1)>`}

	t.Run("planner", func(t *testing.T) {
		// A pull request's author writes the image and env values the
		// plan shows; the planner escapes them, the page keeps them text.
		pl := &planner.Plan{Repo: "fleet", Commit: "0123456789abcdef", Changes: []planner.Change{{
			Target: planner.Target{Service: "shop", Role: "web", Host: "web-1"}, Action: planner.ActionUpdate, Version: "5665f5db7f7d",
			Fields: []planner.FieldChange{{Field: "image", Old: "ghcr.io/acme/shop:v1", New: xss[0]}, {Field: "env.GREETING", Old: "hi", New: xss[1]}},
		}}, Warnings: []string{"services/shop.yml:3:1: " + xss[0] + " " + xss[1]}}
		var md strings.Builder
		if err := pl.WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
		out := string(planHTML(md.String()))
		checkOnlySafeTags(t, out)
		for _, want := range []string{
			"<strong>bosun plan: 1 target to change.</strong>",
			"<details open><summary><b>shop</b>: 1 to update</summary>",
			"<table>", "<th>Field</th>", "<td><code>image</code></td>",
			"<td><code>&lt;script&gt;alert(1)&lt;/script&gt;</code></td>",
			"<td><code>&lt;img src=x onerror=alert(1)&gt;</code></td>",
			"<li>services/shop.yml:3:1: &lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;</li>",
			"</details>",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("rendered plan lacks %q:\n%s\n(Markdown:\n%s)", want, out, md.String())
			}
		}
	})

	t.Run("rawMarkdown", func(t *testing.T) {
		// The same, had the Markdown held the raw HTML itself.
		md := "# Plan for `fleet`\n\n**bold** and `code`\n\n" +
			xss[0] + "\n\n" +
			"| Field | New |\n|---|---|\n| image | " + xss[1] + " |\n| env | <code onclick=alert(1)>x</code> <CODE>y</CODE> |\n\n" +
			"a [link](javascript:alert(1)) and [ok](https://example.com/x)\n\n" +
			"<details onmouseover=alert(1)><summary>s</summary>\n\nbody\n\n</details>\n\n" +
			"</details></section></main><b>unclosed\n\n" +
			"<!-- a comment --> <style>p{}</style>\n\n" +
			"| left | right |\n|:---|---:|\n| a | b |\n\n" +
			"```\n" + xss[0] + "\n```\n"
		out := string(planHTML(md))
		checkOnlySafeTags(t, out)
		for _, want := range []string{
			"<h1>Plan for <code>fleet</code></h1>", "<strong>bold</strong>", "<code>code</code>",
			"&lt;script&gt;alert(1)&lt;/script&gt;",
			"<table>", "<th>Field</th>", "<td>&lt;img src=x onerror=alert(1)&gt;</td>",
			"&lt;code onclick=alert(1)&gt;x&lt;/code&gt; &lt;CODE&gt;y&lt;/CODE&gt;",
			`<a href="https://example.com/x">ok</a>`,
			"&lt;details onmouseover=alert(1)&gt;",
			"&lt;/details&gt;&lt;/section&gt;&lt;/main&gt;&lt;b&gt;unclosed",
			"&lt;!-- a comment --&gt;",
			"<pre><code>&lt;script&gt;alert(1)&lt;/script&gt;\n</code></pre>",
			`<th align="left">left</th>`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("rendered Markdown lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, `href="javascript`) || strings.Contains(out, "style=") {
			t.Errorf("a javascript: link became a link, or a style attribute (refused by the CSP) was written:\n%s", out)
		}
	})
}
