package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

var fileType = reflect.TypeFor[File]()

// walk checks that every key of the YAML tree is a field of t, and
// records each field's line by its dotted path. yaml.v3's own check names
// only the field, not where it sits, and stops at the first document
// type; this names "token.clock_skw" at its line.
func walk(n *yaml.Node, t reflect.Type, path string, lines map[string]int) *Error {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		return &Error{Line: n.Line, Field: path, Reason: "aliases are not allowed"}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		return walkStruct(n, t, path, lines)
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = item.Line
			if err := walk(item, t.Elem(), p, lines); err != nil {
				return err
			}
		}
	}
	// Scalars and mismatched kinds are left to the decoder, which
	// reports them with their line.
	return nil
}

func walkStruct(n *yaml.Node, t reflect.Type, path string, lines map[string]int) *Error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		p := join(path, key.Value)
		if seen[key.Value] {
			return &Error{Line: key.Line, Field: p, Reason: "given twice"}
		}
		seen[key.Value] = true
		f, ok := fieldByTag(t, key.Value)
		if !ok {
			return &Error{Line: key.Line, Field: p, Reason: "unknown field"}
		}
		lines[p] = key.Line
		if err := walk(val, f.Type, p, lines); err != nil {
			return err
		}
	}
	return nil
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == name && tag != "-" && f.IsExported() {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
