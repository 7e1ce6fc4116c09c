package plugins_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/wstap/wstap/plugins"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in   string
		want plugins.Spec
		err  bool
	}{
		{in: "log", want: plugins.Spec{Kind: plugins.Named, Name: "log", Options: map[string]string{}}},
		{in: "replace:dir=c2s,match=REGEX,with=TEXT", want: plugins.Spec{Kind: plugins.Named, Name: "replace",
			Options: map[string]string{"dir": "c2s", "match": "REGEX", "with": "TEXT"}}},
		{in: `replace:match='a,b',with=c`, want: plugins.Spec{Kind: plugins.Named, Name: "replace", Options: map[string]string{"match": "a,b", "with": "c"}}},
		{in: `replace:match='x=1',with="say ""hi"""`, want: plugins.Spec{Kind: plugins.Named, Name: "replace", Options: map[string]string{"match": "x=1", "with": `say "hi"`}}},
		{in: `replace:match='it''s',with=''`, want: plugins.Spec{Kind: plugins.Named, Name: "replace", Options: map[string]string{"match": "it's", "with": ""}}},
		{in: `replace:match=\d+\s,with=`, want: plugins.Spec{Kind: plugins.Named, Name: "replace", Options: map[string]string{"match": `\d+\s`, "with": ""}}},
		{in: "aes:key=hex:00112233", want: plugins.Spec{Kind: plugins.Named, Name: "aes", Options: map[string]string{"key": "hex:00112233"}}},
		{in: "./examples/hooks/chatdecrypt.go", want: plugins.Spec{Kind: plugins.GoFile, Path: "./examples/hooks/chatdecrypt.go"}},
		{in: "exec:/usr/bin/python3 hook.py --x=1,2", want: plugins.Spec{Kind: plugins.Exec, Command: "/usr/bin/python3 hook.py --x=1,2"}},
		{in: "exec:", err: true},
		{in: "", err: true},
		{in: "Bad", err: true},
		{in: "replace:match", err: true},
		{in: "replace:=x", err: true},
		{in: "replace:a=1,a=2", err: true},
		{in: "replace:a=1,", err: true},
		{in: "replace:a='open", err: true},
		{in: "replace:a='q'x", err: true},
		{in: "replace:a=b=c", err: true},
	}
	for _, tc := range tests {
		got, err := plugins.ParseSpec(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParseSpec(%q) error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			if !errors.Is(err, plugins.ErrSpec) {
				t.Errorf("ParseSpec(%q) error %v does not wrap ErrSpec", tc.in, err)
			}
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSpec(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		again, err := plugins.ParseSpec(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseSpec(%q).String() = %q does not parse back: %+v, %v", tc.in, got.String(), again, err)
		}
	}
}
