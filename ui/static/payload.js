// Payload views: text (control characters shown, never interpreted), pretty JSON
// (the literals as they were written: no number is rounded) and a hex dump.
import {el} from "./dom.js";

// fromBase64 decodes the API's base64 into bytes.
export function fromBase64(b64) {
	const bin = atob(b64 || "");
	const out = new Uint8Array(bin.length);
	for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
	return out;
}

const utf8 = new TextDecoder("utf-8", {fatal: false});

// decodeText decodes bytes as UTF-8 (invalid sequences become U+FFFD).
export function decodeText(b) {
	return utf8.decode(b);
}

const hexDigits = "0123456789abcdef";

// toHex writes bytes as lower-case hex without separators.
export function toHex(b) {
	let s = "";
	for (let i = 0; i < b.length; i++) s += hexDigits[b[i] >> 4] + hexDigits[b[i] & 15];
	return s;
}

// Characters a reader must see rather than have act: C0 controls (but tab and
// newline), DEL, C1 controls, and the invisible format characters that reorder
// or hide text (bidi overrides, zero-width characters, the BOM).
const special = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/;

const c0Names = ["NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF", "CR", "SO", "SI",
	"DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US"];

// visible returns how a special character is shown (an escape, which every font
// can draw), and its description.
function visible(cp) {
	const hex = cp.toString(16).padStart(cp < 0x100 ? 2 : 4, "0");
	const u = "U+" + cp.toString(16).toUpperCase().padStart(4, "0");
	if (cp === 0) return ["\\0", u + " NUL"];
	if (cp === 0x0d) return ["\\r", u + " CR"];
	if (cp < 0x20) return ["\\x" + hex, u + " " + c0Names[cp]];
	if (cp === 0x7f) return ["\\x7f", u + " DEL"];
	if (cp <= 0x9f) return ["\\u00" + hex, u + " (C1 control)"];
	return ["\\u" + hex, u + " (invisible format character)"];
}

// textNodes appends text to parent, the special characters as marked spans that
// show their escapes (\x1b for ESC, \r for CR, \u202e for a bidi override…);
// tabs and line breaks stay as they are.
export function textNodes(parent, text) {
	if (!special.test(text)) {
		parent.append(document.createTextNode(text));
		return;
	}
	let run = "";
	for (const ch of text) {
		const cp = ch.codePointAt(0);
		if (cp === 0x0a || cp === 0x09 || !special.test(ch)) {
			run += ch;
			continue;
		}
		if (run) parent.append(document.createTextNode(run));
		run = "";
		const [shown, title] = visible(cp);
		parent.append(el("span", {className: "ctl", title}, shown));
	}
	if (run) parent.append(document.createTextNode(run));
}

// jsonTokens splits valid JSON text into tokens.
const tokenRe = /\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|[{}[\]:,])/y;

// parseJSON reports whether text is a JSON object or array (a bare number or
// string is shown as text).
export function isJSON(text) {
	const t = text.trimStart();
	if (t[0] !== "{" && t[0] !== "[") return false;
	try {
		JSON.parse(text);
		return true;
	} catch {
		return false;
	}
}

// prettyJSON appends text (valid JSON) to parent indented by two spaces, with
// keys, strings, numbers and literals in their own spans; highlight false keeps
// it one text node (for large documents).
export function prettyJSON(parent, text, highlight) {
	tokenRe.lastIndex = 0;
	const toks = [];
	let m;
	while ((m = tokenRe.exec(text)) !== null) toks.push(m[1]);
	let out = [], depth = 0, plain = "";
	const flush = () => { if (plain) { out.push(plain); plain = ""; } };
	const put = (s, cls) => {
		if (!highlight || !cls) { plain += s; return; }
		flush();
		out.push([s, cls]);
	};
	const nl = () => { plain += "\n" + "  ".repeat(depth); };
	for (let i = 0; i < toks.length; i++) {
		const t = toks[i];
		switch (t) {
		case "{": case "[":
			if (toks[i + 1] === (t === "{" ? "}" : "]")) { put(t + toks[i + 1], "p"); i++; break; }
			put(t, "p"); depth++; nl(); break;
		case "}": case "]":
			depth--; nl(); put(t, "p"); break;
		case ",":
			put(",", "p"); nl(); break;
		case ":":
			put(": ", "p"); break;
		default:
			if (t[0] === '"') put(t, toks[i + 1] === ":" ? "k" : "s");
			else if (t === "true" || t === "false" || t === "null") put(t, "l");
			else put(t, "n");
		}
	}
	flush();
	for (const o of out) {
		if (typeof o === "string") { textNodes(parent, o); continue; }
		const span = el("span", {className: "j" + o[1]});
		textNodes(span, o[0]);
		parent.append(span);
	}
}

// hexDump fills three columns (offsets, hex bytes, ASCII) for b, 16 bytes a line.
export function hexDump(b) {
	const offs = [], hex = [], ascii = [];
	for (let off = 0; off < b.length; off += 16) {
		offs.push(off.toString(16).padStart(8, "0"));
		let h = "", a = "";
		for (let i = 0; i < 16; i++) {
			if (i === 8) h += " ";
			if (off + i < b.length) {
				const c = b[off + i];
				h += hexDigits[c >> 4] + hexDigits[c & 15] + " ";
				a += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : ".";
			} else {
				h += "   ";
			}
		}
		hex.push(h.trimEnd());
		ascii.push(a);
	}
	return el("div", {className: "hexdump"},
		el("pre", {className: "hx-off", "aria-label": "offsets"}, offs.join("\n")),
		el("pre", {className: "hx-bytes", "aria-label": "hex bytes"}, hex.join("\n")),
		el("pre", {className: "hx-ascii", "aria-label": "ASCII"}, ascii.join("\n")));
}

// indentJSON returns text (valid JSON) indented by two spaces, every literal as
// it was written (for an editor: a string, not nodes).
export function indentJSON(text) {
	tokenRe.lastIndex = 0;
	const toks = [];
	let m;
	while ((m = tokenRe.exec(text)) !== null) toks.push(m[1]);
	let out = "", depth = 0;
	const nl = () => { out += "\n" + "  ".repeat(depth); };
	for (let i = 0; i < toks.length; i++) {
		const t = toks[i];
		switch (t) {
		case "{": case "[":
			if (toks[i + 1] === (t === "{" ? "}" : "]")) { out += t + toks[i + 1]; i++; break; }
			out += t; depth++; nl(); break;
		case "}": case "]":
			depth--; nl(); out += t; break;
		case ",":
			out += ","; nl(); break;
		case ":":
			out += ": "; break;
		default:
			out += t;
		}
	}
	return out;
}

// compactJSON removes the whitespace between the tokens of JSON text, leaving
// strings and numbers exactly as written.
export function compactJSON(text) {
	let out = "", inStr = false, esc = false;
	for (const ch of text) {
		if (inStr) {
			out += ch;
			if (esc) esc = false;
			else if (ch === "\\") esc = true;
			else if (ch === "\"") inStr = false;
		} else if (ch === "\"") {
			inStr = true;
			out += ch;
		} else if (ch !== " " && ch !== "\t" && ch !== "\n" && ch !== "\r") {
			out += ch;
		}
	}
	return out;
}

// hasSpecial reports whether text holds characters a text field would not show
// (controls, bidi overrides, zero-width characters).
export function hasSpecial(text) {
	return /[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/.test(text);
}
