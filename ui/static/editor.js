// A payload editor: the bytes of a message as text, JSON (validated as you type,
// sent compact with every literal as written), hex or base64, in a text area.
// The bytes only ever go into the text area's value: nothing is parsed as HTML.
import {el, bytes as fmtBytes} from "./dom.js";
import {toHex, isJSON, indentJSON, compactJSON, hasSpecial} from "./payload.js";

const strict = new TextDecoder("utf-8", {fatal: true});
const encoder = new TextEncoder();

const LABELS = {text: "Text", json: "JSON", hex: "Hex", base64: "Base64"};

// utf8Text returns b as text, or null when b is not valid UTF-8.
export function utf8Text(b) {
	try { return strict.decode(b); } catch { return null; }
}

// hexLines writes b as hex, 16 bytes a line, a space between bytes.
export function hexLines(b) {
	const lines = [];
	for (let i = 0; i < b.length; i += 16) {
		const h = toHex(b.subarray(i, i + 16));
		lines.push(h.match(/../g).join(" "));
	}
	return lines.join("\n");
}

function toBase64(b) {
	let s = "";
	for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
	return btoa(s);
}

function sameBytes(a, b) {
	if (a.length !== b.length) return false;
	for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
	return true;
}

// PayloadEditor edits bytes. modes: the views offered ("text", "json", "hex",
// "base64"); onChange is called after every change of content or mode.
export class PayloadEditor {
	constructor({modes = ["text", "json", "hex"], onChange = () => {}, label = "payload", showEdited = true} = {}) {
		this.modes = modes;
		this.showEdited = showEdited;
		this.onChange = onChange;
		this.original = new Uint8Array(0);
		this.mode = modes[0];
		this.buttons = {};
		this.seg = el("div", {className: "seg", role: "group", "aria-label": "edit as"});
		for (const m of modes) {
			const b = el("button", {type: "button", className: "small", "data-mode": m}, LABELS[m]);
			b.addEventListener("click", () => this.switchTo(m));
			this.buttons[m] = b;
			this.seg.append(b);
		}
		this.area = el("textarea", {className: "editor-area", spellcheck: false, autocomplete: "off", "aria-label": label});
		this.area.addEventListener("input", () => this.changed());
		// Tab indents rather than leaving the field.
		this.area.addEventListener("keydown", ev => {
			if (ev.key === "Tab" && !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
				ev.preventDefault();
				this.area.setRangeText(this.mode === "json" ? "  " : "\t", this.area.selectionStart, this.area.selectionEnd, "end");
				this.changed();
			}
		});
		this.status = el("div", {className: "editor-status", role: "status"});
		this.root = el("div", {className: "editor"}, this.area, this.status);
	}

	// set shows b (a Uint8Array) and makes it the original the editor compares
	// with; mode, when given and possible, is the view to start in.
	set(b, mode) {
		this.original = b;
		const text = utf8Text(b);
		let m = mode && this.modes.includes(mode) ? mode : null;
		if (m === "json" && (text === null || !isJSON(text))) m = null;
		if (m === "text" && text === null) m = null;
		if (!m) {
			if (text !== null && isJSON(text) && this.modes.includes("json")) m = "json";
			else if (text !== null && (!hasSpecial(text) || !this.modes.includes("hex"))) m = "text";
			else m = this.modes.includes("hex") ? "hex" : this.modes.includes("base64") ? "base64" : "text";
		}
		this.mode = m;
		this.area.value = this.render(b, m);
		this.changed();
	}

	// render writes b in mode m.
	render(b, m) {
		switch (m) {
		case "hex": return hexLines(b);
		case "base64": return toBase64(b);
		case "json": return indentJSON(utf8Text(b));
		default: return utf8Text(b) ?? "";
		}
	}

	// read returns {bytes} for what the text area holds, or {error}.
	read() {
		const v = this.area.value;
		switch (this.mode) {
		case "hex": {
			const s = v.replace(/[\s:]/g, "");
			if (/[^0-9a-fA-F]/.test(s)) return {error: "hex: only 0-9 and a-f (spaces, new lines and : between bytes are ignored)"};
			if (s.length % 2) return {error: "hex: an odd number of digits"};
			const b = new Uint8Array(s.length / 2);
			for (let i = 0; i < b.length; i++) b[i] = parseInt(s.substr(2 * i, 2), 16);
			return {bytes: b};
		}
		case "base64": {
			const s = v.replace(/\s/g, "");
			try {
				const bin = atob(s);
				const b = new Uint8Array(bin.length);
				for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
				return {bytes: b};
			} catch {
				return {error: "base64: not valid base64 (A-Z, a-z, 0-9, +, / and = padding)"};
			}
		}
		case "json":
			try {
				JSON.parse(v);
			} catch (err) {
				return {error: "invalid JSON: " + String(err.message || err).replace(/^JSON\.parse: /, "")};
			}
			return {bytes: encoder.encode(compactJSON(v))};
		default:
			return {bytes: encoder.encode(v)};
		}
	}

	// edited reports whether the bytes differ from the original (in JSON, whether
	// the JSON differs: indentation is not an edit).
	edited() {
		const r = this.read();
		if (r.error) return true;
		if (this.mode === "json") {
			const orig = utf8Text(this.original);
			return orig === null || compactJSON(orig) !== compactJSON(this.area.value);
		}
		return !sameBytes(r.bytes, this.original);
	}

	// payload returns the API's payload field for the content ({text}, {hex} or
	// {base64}), or {error}.
	payload() {
		const r = this.read();
		if (r.error) return r;
		if (this.mode === "text") return {text: this.area.value};
		if (this.mode === "json") return {text: compactJSON(this.area.value)};
		if (this.mode === "hex") return {hex: toHex(r.bytes)};
		return {base64: toBase64(r.bytes)};
	}

	// isText reports whether the content is sent as a text field (text or JSON).
	isText() {
		return this.mode === "text" || this.mode === "json";
	}

	// switchTo shows the content in mode m, when it can be.
	switchTo(m) {
		if (m === this.mode) return;
		const r = this.read();
		if (r.error) {
			this.showStatus("Fix this first, then switch: " + r.error, "bad");
			return;
		}
		if (m === "text" || m === "json") {
			const text = utf8Text(r.bytes);
			if (text === null) {
				this.showStatus("These bytes are not valid UTF-8: edit them as hex" + (this.modes.includes("base64") ? " or base64" : "") + ".", "bad");
				return;
			}
			if (m === "json" && !isJSON(text)) {
				try { JSON.parse(text); } catch (err) {
					this.showStatus("Not JSON (" + String(err.message || err) + "): edit it as text.", "bad");
					return;
				}
			}
		}
		this.mode = m;
		this.area.value = this.render(r.bytes, m);
		this.changed();
	}

	changed() {
		for (const [m, b] of Object.entries(this.buttons)) {
			b.classList.toggle("on", m === this.mode);
			b.setAttribute("aria-pressed", String(m === this.mode));
		}
		this.root.dataset.mode = this.mode;
		const r = this.read();
		if (r.error) {
			this.showStatus(r.error, "bad");
		} else {
			const parts = [fmtBytes(r.bytes.length)];
			if (this.mode === "json") parts.push("valid JSON, sent compact");
			else if (this.mode === "text" && hasSpecial(this.area.value)) parts.push("holds control or invisible characters: Hex shows them");
			else if (this.mode !== "text" && utf8Text(r.bytes) === null) parts.push("binary (not UTF-8)");
			const edited = this.showEdited && this.edited();
			if (edited) parts.push("edited");
			this.showStatus(parts.join(" · "), edited ? "edited" : "");
		}
		this.onChange();
	}

	showStatus(text, cls) {
		this.status.textContent = text;
		this.status.className = "editor-status" + (cls ? " " + cls : "");
		this.area.classList.toggle("invalid", cls === "bad");
	}
}
