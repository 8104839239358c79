package dashboard

import (
	"bytes"
	"html"
	"html/template"
	"regexp"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// The pull requests page shows each plan as HTML, rendered from the
// comment's Markdown (planner's Plan.WriteMarkdown, ConfigErrors.
// WriteMarkdown) with goldmark and GFM tables, never with its unsafe
// option: goldmark escapes text and drops links to javascript: and the
// like, and raw HTML in the Markdown goes through planHTMLTags below.
//
// The planner writes a few raw tags of its own around text it has already
// escaped: <details><summary><b>SERVICE</b>: …</summary> … </details> per
// service, and <code>…</code> (with <br>) in table cells. Those exact tags,
// without attributes, are kept when they pair up (an open and its close
// under the same parent node, properly nested); any other tag, an
// attribute, or an unpaired tag is shown as text. So no text from a pull
// request becomes HTML, and what is kept cannot close or open the page's
// own elements. The page's CSP needs nothing more: no style or script
// attribute can come out.

// planHTMLTags are the raw tags kept, as the planner writes them, and
// whether each may stand in an HTML block (true) or inline (false) only.
var planHTMLTags = map[string]bool{"details": true, "summary": true, "b": false, "code": false}

// planMarkdown renders plans; it holds no state between conversions.
var planMarkdown = goldmark.New(
	// Cell alignment as the align attribute: a style attribute is inline
	// style, which the pages' CSP refuses.
	goldmark.WithExtensions(extension.NewTable(extension.WithTableCellAlignMethod(extension.TableCellAlignAttribute))),
	goldmark.WithParserOptions(parser.WithASTTransformers(util.Prioritized(rawHTMLPairer{}, 1000))),
	goldmark.WithRendererOptions(renderer.WithNodeRenderers(util.Prioritized(rawHTMLRenderer{}, 100))),
)

// planHTML renders a plan's Markdown as HTML for a page. If goldmark fails
// (it does not on a bytes.Buffer), the source is shown escaped.
func planHTML(md string) template.HTML {
	var b bytes.Buffer
	if err := planMarkdown.Convert([]byte(md), &b); err != nil {
		return template.HTML("<pre>" + html.EscapeString(md) + "</pre>")
	}
	return template.HTML(b.String()) // every tag is goldmark's own or a planHTMLTags pair
}

// rawTagRE finds what may be a tag in raw HTML. What it misses is text,
// and text is escaped, so it need not be exact.
var rawTagRE = regexp.MustCompile(`<[^<>]*>?`)

// safeHTMLKey is the attribute under which rawHTMLPairer leaves a raw
// node's safe HTML for rawHTMLRenderer.
var safeHTMLKey = []byte("bosun-safe-html")

// rawPiece is a tag or the text between tags in a raw HTML node.
type rawPiece struct {
	s       string
	tag     string // the planHTMLTags name, for a tag written exactly as the planner writes it
	closing bool
	keep    bool // a tag that pairs up
}

// rawHTMLPairer pairs the kept tags among the raw HTML nodes of each
// parent: HTML blocks with HTML blocks (a <details> opens in one and
// closes in another), inline raw HTML with its siblings (a table cell's
// <code> and </code>), and leaves each node's safe HTML on it.
type rawHTMLPairer struct{}

func (rawHTMLPairer) Transform(doc *ast.Document, reader text.Reader, _ parser.Context) {
	source := reader.Source()
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		var blocks, inlines []ast.Node
		for c := n.FirstChild(); c != nil; c = c.NextSibling() {
			switch c.Kind() {
			case ast.KindHTMLBlock:
				blocks = append(blocks, c)
			case ast.KindRawHTML:
				inlines = append(inlines, c)
			}
		}
		pairRaw(blocks, true, source)
		pairRaw(inlines, false, source)
		return ast.WalkContinue, nil
	})
}

// pairRaw splits nodes (siblings, in order) into pieces, keeps the tags
// that pair up, and sets each node's safe HTML. block says whether the
// nodes are HTML blocks, where <details> and <summary> may stand.
func pairRaw(nodes []ast.Node, block bool, source []byte) {
	if len(nodes) == 0 {
		return
	}
	pieces := make([][]rawPiece, len(nodes))
	type open struct{ node, piece int }
	var stack []open
	for i, n := range nodes {
		for _, p := range splitRaw(rawSource(n, source)) {
			blockTag, known := planHTMLTags[p.tag]
			if known && (block || !blockTag) {
				j := len(pieces[i])
				if !p.closing {
					stack = append(stack, open{i, j})
				} else if k := len(stack) - 1; k >= 0 && pieces[stack[k].node][stack[k].piece].tag == p.tag {
					pieces[stack[k].node][stack[k].piece].keep = true
					p.keep = true
					stack = stack[:k]
				}
			}
			if p.tag == "br" {
				p.keep = true
			}
			pieces[i] = append(pieces[i], p)
		}
	}
	for i, n := range nodes {
		var b bytes.Buffer
		for _, p := range pieces[i] {
			switch {
			case p.keep && p.tag == "details" && !p.closing:
				// Open: the page is there to read the plan; its summary
				// folds it.
				b.WriteString("<details open>")
			case p.keep:
				b.WriteString(p.s)
			default:
				// Text keeps the planner's entities (&lt; stays &lt;, and
				// a bare < becomes one).
				b.WriteString(html.EscapeString(html.UnescapeString(p.s)))
			}
		}
		n.SetAttribute(safeHTMLKey, b.Bytes())
	}
}

// rawSource is a raw HTML node's source: an HTML block's lines and its
// closing line, or an inline's segments.
func rawSource(n ast.Node, source []byte) string {
	var b bytes.Buffer
	switch n := n.(type) {
	case *ast.HTMLBlock:
		for i := range n.Lines().Len() {
			l := n.Lines().At(i)
			b.Write(l.Value(source))
		}
		if n.HasClosure() {
			b.Write(n.ClosureLine.Value(source))
		}
	case *ast.RawHTML:
		for i := range n.Segments.Len() {
			s := n.Segments.At(i)
			b.Write(s.Value(source))
		}
	}
	return b.String()
}

// splitRaw cuts raw HTML into tags and text, naming the tags written
// exactly as <NAME>, </NAME> or <br> with NAME in planHTMLTags.
func splitRaw(s string) []rawPiece {
	var out []rawPiece
	last := 0
	for _, m := range rawTagRE.FindAllStringIndex(s, -1) {
		if m[0] > last {
			out = append(out, rawPiece{s: s[last:m[0]]})
		}
		p := rawPiece{s: s[m[0]:m[1]]}
		name, closing := p.s, false
		if len(name) > 2 && name[1] == '/' {
			name, closing = "<"+name[2:], true
		}
		if len(name) > 2 && name[len(name)-1] == '>' {
			n := name[1 : len(name)-1]
			if _, ok := planHTMLTags[n]; ok || n == "br" && !closing {
				p.tag, p.closing = n, closing
			}
		}
		out = append(out, p)
		last = m[1]
	}
	if last < len(s) {
		out = append(out, rawPiece{s: s[last:]})
	}
	return out
}

// rawHTMLRenderer writes the safe HTML rawHTMLPairer left on each raw
// HTML node, in place of goldmark's "raw HTML omitted".
type rawHTMLRenderer struct{}

func (rawHTMLRenderer) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindHTMLBlock, renderSafeRaw)
	reg.Register(ast.KindRawHTML, renderSafeRaw)
}

func renderSafeRaw(w util.BufWriter, _ []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
	if entering {
		v, _ := n.Attribute(safeHTMLKey)
		b, _ := v.([]byte)
		_, _ = w.Write(b)
		if n.Kind() == ast.KindHTMLBlock && !bytes.HasSuffix(b, []byte("\n")) {
			_ = w.WriteByte('\n')
		}
	}
	return ast.WalkSkipChildren, nil
}
