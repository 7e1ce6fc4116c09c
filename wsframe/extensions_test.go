package wsframe_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/wstap/wstap/wsframe"
)

func TestParseExtensions(t *testing.T) {
	tests := []struct {
		in      []string
		want    []wsframe.Extension
		wantErr bool
	}{
		{in: nil, want: nil},
		{in: []string{"permessage-deflate"}, want: []wsframe.Extension{{Name: "permessage-deflate"}}},
		{in: []string{`permessage-deflate; client_max_window_bits, permessage-deflate;server_max_window_bits="10" , x-foo`, "y"},
			want: []wsframe.Extension{
				{Name: "permessage-deflate", Params: []wsframe.ExtensionParam{{Name: "client_max_window_bits"}}},
				{Name: "permessage-deflate", Params: []wsframe.ExtensionParam{{Name: "server_max_window_bits", Value: "10", HasValue: true}}},
				{Name: "x-foo"}, {Name: "y"}}},
		{in: []string{`a; q="x\"y"`}, want: []wsframe.Extension{{Name: "a", Params: []wsframe.ExtensionParam{{Name: "q", Value: `x"y`, HasValue: true}}}}},
		{in: []string{"a;"}, wantErr: true},
		{in: []string{"a; b="}, wantErr: true},
		{in: []string{`a; b="open`}, wantErr: true},
		{in: []string{"a b"}, wantErr: true},
		{in: []string{"; b"}, wantErr: true},
	}
	for _, tc := range tests {
		got, err := wsframe.ParseExtensions(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseExtensions(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if err != nil && !errors.Is(err, wsframe.ErrExtensions) {
			t.Errorf("ParseExtensions(%q) error %v does not wrap ErrExtensions", tc.in, err)
		}
		if err == nil && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseExtensions(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestNegotiateDeflate(t *testing.T) {
	chromium := []string{"permessage-deflate; client_max_window_bits"}
	tests := []struct {
		name     string
		offer    []string
		response []string
		want     wsframe.DeflateParams
		ok       bool
		wantErr  bool
	}{
		{name: "not accepted", offer: chromium, response: nil},
		{name: "other extension", offer: chromium, response: []string{"x-webkit"}},
		{name: "plain", offer: chromium, response: []string{"permessage-deflate"}, ok: true},
		{name: "gorilla", offer: chromium, response: []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
			want: wsframe.DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true}, ok: true},
		{name: "windows", offer: chromium, response: []string{"permessage-deflate; server_max_window_bits=10; client_max_window_bits=8"},
			want: wsframe.DeflateParams{ServerMaxWindowBits: 10, ClientMaxWindowBits: 8}, ok: true},
		{name: "quoted window", offer: chromium, response: []string{`permessage-deflate; server_max_window_bits="12"`},
			want: wsframe.DeflateParams{ServerMaxWindowBits: 12}, ok: true},
		{name: "not offered", offer: nil, response: []string{"permessage-deflate"}, wantErr: true},
		{name: "accepted twice", offer: chromium, response: []string{"permessage-deflate, permessage-deflate"}, wantErr: true},
		{name: "client bits not offered", offer: []string{"permessage-deflate"}, response: []string{"permessage-deflate; client_max_window_bits=10"}, wantErr: true},
		{name: "client bits without value", offer: chromium, response: []string{"permessage-deflate; client_max_window_bits"}, wantErr: true},
		{name: "window 7", offer: chromium, response: []string{"permessage-deflate; server_max_window_bits=7"}, wantErr: true},
		{name: "window 16", offer: chromium, response: []string{"permessage-deflate; server_max_window_bits=16"}, wantErr: true},
		{name: "window +9", offer: chromium, response: []string{`permessage-deflate; server_max_window_bits="+9"`}, wantErr: true},
		{name: "window 010", offer: chromium, response: []string{"permessage-deflate; server_max_window_bits=010"}, wantErr: true},
		{name: "duplicate", offer: chromium, response: []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, wantErr: true},
		{name: "takeover flag with value", offer: chromium, response: []string{"permessage-deflate; server_no_context_takeover=1"}, wantErr: true},
		{name: "unknown parameter", offer: chromium, response: []string{"permessage-deflate; foo"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := wsframe.NegotiateDeflate(tc.offer, tc.response)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				if !errors.Is(err, wsframe.ErrExtensions) {
					t.Errorf("error %v does not wrap ErrExtensions", err)
				}
				return
			}
			if ok != tc.ok || got != tc.want {
				t.Fatalf("got %+v ok=%v, want %+v ok=%v", got, ok, tc.want, tc.ok)
			}
			if ok {
				// The formatted parameters negotiate to themselves.
				again, ok2, err := wsframe.NegotiateDeflate(chromium, []string{got.String()})
				if err != nil || !ok2 || again != got {
					t.Errorf("String() = %q re-negotiates to %+v, %v, %v", got.String(), again, ok2, err)
				}
			}
		})
	}
	p := wsframe.DeflateParams{ClientNoContextTakeover: true, ServerMaxWindowBits: 10}
	if c := p.Sender(wsframe.Client); c.ContextTakeover || c.WindowBits != 0 {
		t.Errorf("Sender(Client) = %+v", c)
	}
	if c := p.Sender(wsframe.Server); !c.ContextTakeover || c.WindowBits != 10 {
		t.Errorf("Sender(Server) = %+v", c)
	}
}
