package dashboard

import (
	"io/fs"
	"regexp"
	"testing"
)

// The pages' Content-Security-Policy (default-src 'self') makes browsers
// ignore inline styles and scripts: a template with one renders wrong in
// a browser (TestBrowser) while every HTTP-level test passes. Styles go in
// static/style.css, scripts in /static/*.js.
func TestTemplates_noInlineStyleOrScript(t *testing.T) {
	inline := regexp.MustCompile(`(?i)\sstyle\s*=|<style[\s>]|<script(\s[^>]*)?>\s*[^<\s]|\son[a-z]+\s*=\s*"`)
	err := fs.WalkDir(templateFiles, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFiles, path)
		if err != nil {
			return err
		}
		for _, m := range inline.FindAllIndex(b, -1) {
			t.Errorf("%s: %q: inline style or script, which the pages' CSP refuses", path, b[m[0]:min(m[1]+20, len(b))])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
