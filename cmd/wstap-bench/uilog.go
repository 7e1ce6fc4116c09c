package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// The ui section's event log: n messages over four connections, written by the
// same JSONL writer as wstap's --log, for `wstap open`. The traffic looks like an
// app's: a chat (JSON both ways), a market data feed (JSON ticks, mostly from the
// server), an order API (JSON requests and status updates) and a telemetry
// upload (binary frames, acknowledged with JSON). Text payloads are JSON of 60 to
// 200 bytes; about a tenth of the messages are binary (16 to 160 bytes).

// uiQuery is one query the section times, and what the generator counted for it.
type uiQuery struct {
	Name   string `json:"name"`
	Params string `json:"params"` // the /api/messages parameters (url-encoded)
	Want   int    `json:"want"`   // the rows it must select
	Note   string `json:"what"`
}

// The searches (the generator counts their matches as the history does: a
// case-insensitive literal, or a Go regular expression, over each payload).
const (
	uiLiteral  = "refund"              // in order statuses and some chat lines, about 1.5% of the rows
	uiRegexp   = `declined|chargeback` // an alternation: no literal prefix for regexp to skip ahead with
	uiNothing  = "zqxjv-nowhere"       // in no payload: every row is looked at
	uiTyped    = "mallory"             // what the browser types: a user name, in about 1% of the rows
	uiURLGlob  = "*.shop.example"      // what the browser types in the URL filter: the order API's connection, 20% of the rows
	uiTypedRe  = `refunded|chargeback` // what the browser types with "regex" ticked (not uiRegexp: the history caches results)
	uiLogStart = "2026-01-05T09:00:00Z"
)

// uiLogStats is what the generator wrote.
type uiLogStats struct {
	Path     string        `json:"-"`
	Messages int           `json:"messages"`
	Conns    int           `json:"connections"`
	Binary   int           `json:"binary"`
	Bytes    int64         `json:"file_bytes"`
	Took     time.Duration `json:"took_ns"`
	// Queries are the API's queries, in order: filter, literal, regexp, nothing;
	// Typed is the browser's search, TypedURL its URL filter, TypedRe its
	// regexp search.
	Queries  []uiQuery `json:"queries"`
	Typed    uiQuery   `json:"typed"`
	TypedURL uiQuery   `json:"typed_url"`
	TypedRe  uiQuery   `json:"typed_re"`
}

var (
	chatRooms   = []string{"general", "random", "dev", "ops", "support", "sales"}
	chatUsers   = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar", "peggy", "trent", "victor", "walter"}
	symbols     = []string{"BTC-USD", "ETH-USD", "SOL-USD", "ADA-USD", "DOGE-USD", "XRP-USD", "AVAX-USD", "LINK-USD"}
	orderStates = []string{"accepted", "accepted", "accepted", "shipped", "shipped", "delivered", "declined", "refunded"}
	skus        = []string{"SKU-1042", "SKU-2290", "SKU-3318", "SKU-4407", "SKU-5561", "SKU-6675", "SKU-7788", "SKU-8812"}
)

// uiMsgGen makes the payloads, from a fixed seed.
type uiMsgGen struct {
	rng *rand.Rand
	buf []byte
	seq int
}

func newUIMsgGen(seed uint64) *uiMsgGen {
	return &uiMsgGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), buf: make([]byte, 0, 256)}
}

// chatLine returns some words of chat, with a few of the searched words among them.
func (g *uiMsgGen) chatLine(maxLen int) []byte {
	var b []byte
	n := 1 + g.rng.IntN(20)
	for i := 0; i < n; i++ {
		w := chatWords[g.rng.IntN(len(chatWords))]
		switch g.rng.IntN(400) {
		case 0, 1:
			w = "refund"
		case 2:
			w = "chargeback"
		}
		if len(b)+1+len(w) > maxLen {
			break
		}
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, w...)
	}
	return b
}

// text returns a JSON payload of 60 to 200 bytes for connection kind k (0 chat,
// 1 market, 2 orders, 3 telemetry acks) and direction dir; with seq >= 0 it
// carries "seq" first (the click test's live traffic).
func (g *uiMsgGen) text(k int, dir plugins.Direction, seq int) []byte {
	r := g.rng
	b := g.buf[:0]
	b = append(b, '{')
	if seq >= 0 {
		b = append(b, `"seq":`...)
		b = strconv.AppendInt(b, int64(seq), 10)
		b = append(b, ',')
	}
	ts := 1767603600000 + int64(g.seq)*4
	g.seq++
	switch k {
	case 0: // chat
		typ := "message"
		if r.IntN(6) == 0 {
			typ = "typing"
		}
		b = append(b, `"type":"`...)
		b = append(b, typ...)
		b = append(b, `","room":"`...)
		b = append(b, chatRooms[r.IntN(len(chatRooms))]...)
		b = append(b, `","from":"`...)
		b = append(b, chatUsers[r.IntN(len(chatUsers))]...)
		b = append(b, '"')
		if typ == "message" {
			b = append(b, `,"id":"m-`...)
			b = strconv.AppendInt(b, int64(r.IntN(1e7)), 10)
			b = append(b, `","text":"`...)
			b = append(b, g.chatLine(200-len(b)-40)...)
			b = append(b, '"')
		}
		b = append(b, `,"ts":`...)
		b = strconv.AppendInt(b, ts, 10)
	case 1: // market
		if dir == plugins.ClientToServer {
			b = append(b, `"op":"subscribe","channel":"ticker","symbols":["`...)
			b = append(b, symbols[r.IntN(len(symbols))]...)
			b = append(b, `","`...)
			b = append(b, symbols[r.IntN(len(symbols))]...)
			b = append(b, `"],"id":`...)
			b = strconv.AppendInt(b, int64(r.IntN(1e5)), 10)
			break
		}
		px := 100 + r.Float64()*90000
		b = append(b, `"ch":"ticker","sym":"`...)
		b = append(b, symbols[r.IntN(len(symbols))]...)
		b = append(b, `","bid":"`...)
		b = strconv.AppendFloat(b, px, 'f', 2, 64)
		b = append(b, `","ask":"`...)
		b = strconv.AppendFloat(b, px*1.0002, 'f', 2, 64)
		b = append(b, `","vol":`...)
		b = strconv.AppendFloat(b, r.Float64()*5000, 'f', 3, 64)
		b = append(b, `,"ts":`...)
		b = strconv.AppendInt(b, ts, 10)
	case 2: // orders
		id := r.IntN(1e7)
		if dir == plugins.ClientToServer {
			b = append(b, `"op":"order","id":"ord-`...)
			b = strconv.AppendInt(b, int64(id), 10)
			b = append(b, `","side":"`...)
			b = append(b, []string{"buy", "sell"}[r.IntN(2)]...)
			b = append(b, `","sku":"`...)
			b = append(b, skus[r.IntN(len(skus))]...)
			b = append(b, `","qty":`...)
			b = strconv.AppendInt(b, int64(1+r.IntN(9)), 10)
			b = append(b, `,"amount":`...)
			b = strconv.AppendInt(b, int64(100+r.IntN(99900)), 10)
			b = append(b, `,"user":"`...)
			b = append(b, chatUsers[r.IntN(len(chatUsers))]...)
			b = append(b, '"')
			break
		}
		st := orderStates[r.IntN(len(orderStates))]
		if st == "declined" && r.IntN(3) == 0 {
			st = "chargeback"
		}
		b = append(b, `"op":"status","id":"ord-`...)
		b = strconv.AppendInt(b, int64(id), 10)
		b = append(b, `","status":"`...)
		b = append(b, st...)
		b = append(b, `","at":`...)
		b = strconv.AppendInt(b, ts, 10)
	default: // telemetry acks
		b = append(b, `"ack":`...)
		b = strconv.AppendInt(b, int64(g.seq), 10)
		b = append(b, `,"status":"ok","server":"ingest-`...)
		b = strconv.AppendInt(b, int64(1+r.IntN(12)), 10)
		b = append(b, `","window":`...)
		b = strconv.AppendInt(b, int64(64+r.IntN(960)), 10)
	}
	b = append(b, '}')
	// Pad short ones to 60 bytes with a trace id (as many APIs add).
	if len(b) < 60 {
		b = b[:len(b)-1]
		b = append(b, `,"trace":"`...)
		for len(b) < 58 {
			b = append(b, "0123456789abcdef"[r.IntN(16)])
		}
		b = append(b, `"}`...)
	}
	g.buf = b
	return b
}

// binary returns a telemetry frame of 16 to 160 bytes: a small header and
// samples.
func (g *uiMsgGen) binary() []byte {
	n := 16 + g.rng.IntN(145)
	b := g.buf[:0]
	b = append(b, 0xb7, 0x01, byte(n), byte(n>>8))
	for len(b) < n {
		b = append(b, byte(g.rng.Uint32()))
	}
	g.buf = b
	return b
}

// uiLogConns are the four connections of the log (kinds as in uiMsgGen.text).
func uiLogConns() []*plugins.Conn {
	mk := func(id, raw, proto string, port int) *plugins.Conn {
		u, _ := url.Parse(raw)
		return &plugins.Conn{ID: id, URL: u, Mode: plugins.Proxy, Method: "GET", Target: u.RequestURI(), Proto: "HTTP/1.1",
			Request: http.Header{"Host": {u.Host}, "Upgrade": {"websocket"}, "Connection": {"Upgrade"},
				"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="},
				"Origin": {"https://app.example.com"}, "User-Agent": {"Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"},
				"Cookie": {"session=4f2a9c; theme=dark"}},
			Status: 101, Reason: "Switching Protocols", ResponseProto: "HTTP/1.1",
			Response: http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"},
				"Sec-Websocket-Accept": {"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}},
			Client: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 23), Port: 51000 + port}, Server: &net.TCPAddr{IP: net.IPv4(93, 184, 216, 34), Port: 443},
			Subprotocol: proto}
	}
	return []*plugins.Conn{
		mk("c1", "wss://chat.example.com/socket?room=all", "chat.v2", 1),
		mk("c2", "wss://stream.exchange.example/ws/v2", "", 2),
		mk("c3", "wss://api.shop.example/orders", "orders.v1", 3),
		mk("c4", "wss://telemetry.example/ingest", "", 4),
	}
}

// writeUILog writes n messages to path and counts what the section's queries
// must find.
func writeUILog(path string, n int) (*uiLogStats, error) {
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	j := eventlog.NewJSONL(bw, eventlog.Block)
	conns := uiLogConns()
	t0, _ := time.Parse(time.RFC3339, uiLogStart)
	for i, c := range conns {
		j.Opened(c, t0.Add(time.Duration(i)*time.Millisecond))
	}
	st := &uiLogStats{Path: path, Messages: n, Conns: len(conns)}
	lower := func(s string) []byte { return bytes.ToLower([]byte(s)) }
	lit, nothing, typed := lower(uiLiteral), lower(uiNothing), lower(uiTyped)
	re, typedRe := regexp.MustCompile(uiRegexp), regexp.MustCompile(uiTypedRe)
	var nFilter, nLit, nRe, nNothing, nTyped, nShop, nTypedRe int
	g := newUIMsgGen(7)
	var seq [4][2]uint64
	step := time.Hour / time.Duration(max(n, 1)) // an hour of traffic
	for i := range n {
		// The mix: chat 35%, market 35%, orders 20%, telemetry 10%.
		var k int
		switch x := g.rng.IntN(100); {
		case x < 35:
			k = 0
		case x < 70:
			k = 1
		case x < 90:
			k = 2
		default:
			k = 3
		}
		dir := plugins.ServerToClient
		switch k {
		case 0, 2:
			if g.rng.IntN(2) == 0 {
				dir = plugins.ClientToServer
			}
		case 1:
			if g.rng.IntN(50) == 0 {
				dir = plugins.ClientToServer
			}
		case 3:
			if g.rng.IntN(5) != 0 {
				dir = plugins.ClientToServer
			}
		}
		op := wsframe.OpText
		var p []byte
		if k == 3 && dir == plugins.ClientToServer {
			op = wsframe.OpBinary
			p = g.binary()
			st.Binary++
		} else {
			p = g.text(k, dir, -1)
		}
		d := 0
		if dir == plugins.ServerToClient {
			d = 1
		}
		seq[k][d]++
		j.Message(&plugins.Record{Conn: conns[k], Dir: dir, Seq: seq[k][d], Opcode: op,
			Time: t0.Add(time.Second + time.Duration(i)*step), Payload: p, Len: int64(len(p)), Frames: 1, Hooked: true})
		// What the queries select (the history's rules: see history/query.go).
		if dir == plugins.ClientToServer && op == wsframe.OpText {
			nFilter++
		}
		low := bytes.ToLower(p)
		if bytes.Contains(low, lit) {
			nLit++
		}
		if re.Match(p) {
			nRe++
		}
		if bytes.Contains(low, nothing) {
			nNothing++
		}
		if bytes.Contains(low, typed) {
			nTyped++
		}
		if typedRe.Match(p) {
			nTypedRe++
		}
		if k == 2 { // wss://api.shop.example/orders
			nShop++
		}
	}
	end := t0.Add(time.Second + time.Hour + time.Second)
	for _, c := range conns {
		j.Closed(c, plugins.CloseEvent{Time: end, Code: 1001, Reason: "going away", By: "client"})
	}
	if err := j.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if nNothing != 0 {
		return nil, fmt.Errorf("ui log: %q, the search that must match nothing, is in %d messages", uiNothing, nNothing)
	}
	st.Bytes = fi.Size()
	st.Took = time.Since(start)
	st.Queries = []uiQuery{
		{Name: "filter", Params: "dir=c2s&type=text", Want: nFilter, Note: "dir=c2s, type=text"},
		{Name: "literal", Params: "q=" + url.QueryEscape(uiLiteral), Want: nLit, Note: "literal " + strconv.Quote(uiLiteral)},
		{Name: "regexp", Params: "re=" + url.QueryEscape(uiRegexp), Want: nRe, Note: "regexp `" + uiRegexp + "`"},
		{Name: "nothing", Params: "q=" + url.QueryEscape(uiNothing), Want: 0, Note: "literal " + strconv.Quote(uiNothing) + " (in no row)"},
	}
	st.Typed = uiQuery{Name: "typed", Params: "q=" + url.QueryEscape(uiTyped), Want: nTyped, Note: "literal " + strconv.Quote(uiTyped) + " typed in the search box"}
	st.TypedRe = uiQuery{Name: "typed re", Params: "re=" + url.QueryEscape(uiTypedRe), Want: nTypedRe, Note: "regexp `" + uiTypedRe + "` typed in the search box"}
	st.TypedURL = uiQuery{Name: "typed url", Params: "url=" + url.QueryEscape(uiURLGlob), Want: nShop, Note: "glob " + strconv.Quote(uiURLGlob) + " typed in the URL filter"}
	return st, nil
}
