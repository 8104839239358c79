package planner

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fullSpec sets every field of a Spec, found by reflection, so that a new
// field cannot be forgotten by flattenSpec.
func fullSpec(t *testing.T) *Spec {
	t.Helper()
	s := &Spec{}
	fill(reflect.ValueOf(s).Elem())
	return s
}

func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(7)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0))
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e)
		m.SetMapIndex(reflect.ValueOf("K"), e)
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem())
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i))
		}
	}
}

// TestFlattenSpec_MatchesJSON checks that the hand-written flattening names
// every field of the JSON encoding.
func TestFlattenSpec_MatchesJSON(t *testing.T) {
	s := fullSpec(t)
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	want := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if mm, ok := v.(map[string]any); ok && !strings.HasPrefix(prefix, "secrets.") {
			for k, vv := range mm {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				if prefix == "secrets" || prefix == "proxy.certificate" { // secret references are one field each
					want[p] = true
					continue
				}
				walk(p, vv)
			}
			return
		}
		want[prefix] = true
	}
	walk("", m)
	got := map[string]bool{}
	for k := range flattenSpec(s) {
		got[k] = true
	}
	require.Equal(t, want, got)
}

func TestSpec_Version(t *testing.T) {
	a := fullSpec(t)
	v := a.Version()
	require.Regexp(t, `^[0-9a-f]{12}$`, v)
	b := fullSpec(t)
	require.Equal(t, v, b.Version(), "equal specs, equal versions")
	b.Env["K"] = "y"
	require.NotEqual(t, v, b.Version())
	c := fullSpec(t)
	c.Secrets["K"] = SecretRef{Name: "x", Hash: "other"}
	require.NotEqual(t, v, c.Version(), "a secret's hash is part of the version")
}

func TestDuration_JSON(t *testing.T) {
	b, err := json.Marshal(struct{ D Duration }{Duration(90 * time.Second)})
	require.NoError(t, err)
	require.JSONEq(t, `{"D":"1m30s"}`, string(b))
	var out struct{ D Duration }
	require.NoError(t, json.Unmarshal([]byte(`{"D":"2s"}`), &out))
	require.Equal(t, Duration(2*time.Second), out.D)
	require.NoError(t, json.Unmarshal([]byte(`{"D":3000000000}`), &out))
	require.Equal(t, Duration(3*time.Second), out.D)
	require.Error(t, json.Unmarshal([]byte(`{"D":"soon"}`), &out))
}

func TestSplitWords(t *testing.T) {
	for in, want := range map[string][]string{
		`a b  c`:              {"a", "b", "c"},
		`sh -c 'echo "$X"'`:   {"sh", "-c", `echo "$X"`},
		`a "b c" d\ e`:        {"a", "b c", "d e"},
		`x "q\"uote" 'it''s'`: {"x", `q"uote`, "its"},
	} {
		got, err := splitWords(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := splitWords(`a "b`)
	require.Error(t, err)
}

func TestDidYouMean(t *testing.T) {
	require.Equal(t, ` (did you mean "image"?)`, didYouMean("imgae", []string{"image", "servers"}))
	require.Equal(t, "", didYouMean("zzzzzz", []string{"image", "servers"}))
}

// TestRenderInChild_Timeout checks that a template whose loops print nothing
// cannot hold a plan forever. Not parallel: it changes templateTimeout.
func TestRenderInChild_Timeout(t *testing.T) {
	old := templateTimeout
	templateTimeout = 200 * time.Millisecond
	defer func() { templateTimeout = old }()
	_, err := renderInChild(t.Context(), "t", "{{ range 3000000000 }}{{ end }}", nil)
	require.ErrorIs(t, err, errRenderTimeout)
}

// TestRenderInChild_keepsVarTypes: vars reach the child with their YAML
// types (an int stays an int, so eq 80 works; a float stays a float).
func TestRenderInChild_keepsVarTypes(t *testing.T) {
	vars := map[string]any{"port": 80, "ratio": 8.0, "on": true, "none": nil, "list": []any{"a", 2}, "m": map[string]any{"k": "v"}, "big": uint64(1 << 63)}
	out, err := renderInChild(t.Context(), "t", `{{ if eq .port 80 }}p{{ end }} {{ printf "%T %T %T %v %v" .ratio .on .big .list .m.k }} {{ .none }}`, vars)
	require.NoError(t, err)
	require.Equal(t, "p float64 bool uint64 [a 2] v <no value>", string(out))
}

// leaves returns a setter for every leaf value of v (strings, bools,
// numbers, slice items, map values), each changing that one leaf.
func leaves(v reflect.Value, path string) map[string]func() {
	out := map[string]func(){}
	switch v.Kind() {
	case reflect.String:
		out[path] = func() { v.SetString(v.String() + "-changed") }
	case reflect.Bool:
		out[path] = func() { v.SetBool(!v.Bool()) }
	case reflect.Int, reflect.Int64:
		out[path] = func() { v.SetInt(v.Int() + 1) }
	case reflect.Slice:
		for i := range v.Len() {
			maps.Copy(out, leaves(v.Index(i), fmt.Sprintf("%s[%d]", path, i)))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			k := k
			out[path+"."+k.String()] = func() {
				e := reflect.New(v.Type().Elem()).Elem()
				e.Set(v.MapIndex(k))
				for _, set := range leaves(e, "") {
					set()
				}
				v.SetMapIndex(k, e)
			}
		}
	case reflect.Pointer:
		maps.Copy(out, leaves(v.Elem(), path))
	case reflect.Struct:
		for i := range v.NumField() {
			maps.Copy(out, leaves(v.Field(i), path+"."+v.Type().Field(i).Name))
		}
	}
	return out
}

// TestDiffSpecs_EveryField changes each leaf of a full spec in turn and
// checks that the section-wise diff finds exactly what a diff of the whole
// flattened specs finds, and that the change is seen at all.
func TestDiffSpecs_EveryField(t *testing.T) {
	old := fullSpec(t)
	n := 0
	for path := range leaves(reflect.ValueOf(fullSpec(t)).Elem(), "") {
		s := fullSpec(t)
		leaves(reflect.ValueOf(s).Elem(), "")[path]()
		got := diffSpecs(old, s)
		want := appendDiff(nil, flattenSpec(old), flattenSpec(s))
		require.NotEmpty(t, got, "changing %s shows no field", path)
		require.ElementsMatch(t, want, got, path)
		require.NotEqual(t, old.Version(), s.Version(), "changing %s keeps the version", path)
		n++
	}
	require.Greater(t, n, 40)
	require.Empty(t, diffSpecs(old, fullSpec(t)))
}

// TestRenderInChild_memoryBomb: a template that doubles a string until it
// is gigabytes is stopped by the child's address-space limit, and says so.
// Not parallel: it changes renderChildMemory.
func TestRenderInChild_memoryBomb(t *testing.T) {
	old := renderChildMemory
	renderChildMemory = 512 << 20
	defer func() { renderChildMemory = old }()
	_, err := renderInChild(t.Context(), "t", `{{ $x := "0123456789" }}{{ range 40 }}{{ $x = printf "%s%s" $x $x }}{{ end }}`, nil)
	require.ErrorContains(t, err, "too much memory")
}
