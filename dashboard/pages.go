package dashboard

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"net/url"
)

// Pages are html/template files embedded in the binary: templates/
// layout.html is the frame, and each page defines "title" and "content".
// A page handler gathers its data and calls page; no JavaScript build step.

//go:embed templates/*.html
var templateFiles embed.FS

// styleCSS is the pages' stylesheet, served as a file: the pages' CSP
// (default-src 'self') refuses inline styles.
//
//go:embed static/style.css
var styleCSS []byte

// pages are the parsed templates, one set per page (each page's blocks
// override the layout's).
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"home", "login", "error", "fleet", "history", "deployment", "pulls", "newservice", "service"} {
		out[name] = template.Must(template.New(name).Funcs(templateFuncs).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}()

// page renders the page name with data (a map: the page's own keys, plus
// Identity from the request), or 500.
func (s *Server) page(w http.ResponseWriter, r *http.Request, code int, name string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	if id, ok := IdentityOf(r.Context()); ok {
		data["Identity"] = id
	}
	var b bytes.Buffer
	if err := pages[name].ExecuteTemplate(&b, "layout", data); err != nil {
		s.log.ErrorContext(r.Context(), "page not rendered", "page", name, "err", err)
		http.Error(w, "page not rendered; see bosun's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// home is the start page: who is signed in, and the repositories.
func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityOf(r.Context())
	var repos []string
	if s.opts.Daemon != nil {
		repos = s.opts.Daemon.Repos()
	}
	s.page(w, r, http.StatusOK, "home", map[string]any{"Repos": repos, "CanDeploy": id.MayDeploy(), "Flash": r.URL.Query().Get("flash")})
}

// syncPage is the home page's "Sync now" form.
func (s *Server) syncPage(w http.ResponseWriter, r *http.Request) {
	code, msg := s.sync(r)
	if code != http.StatusAccepted {
		s.page(w, r, code, "error", map[string]any{"Message": msg})
		return
	}
	http.Redirect(w, r, "/?"+url.Values{"flash": {msg}}.Encode(), http.StatusSeeOther)
}

// style is GET /static/style.css, public: the login and error pages use
// it too, and it holds nothing but layout.
func (s *Server) style(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Write(styleCSS)
}
