// DOM and formatting helpers. Everything from the traffic goes into the page as
// text (textContent, text nodes, properties such as title): never as HTML.

// el creates an element: attrs are properties (className, title, …) except
// "data-*", "aria-*" and "role", which are attributes; children are nodes or
// strings (which become text nodes).
export function el(tag, attrs, ...children) {
	const e = document.createElement(tag);
	if (attrs) {
		for (const [k, v] of Object.entries(attrs)) {
			if (v === undefined || v === null || v === false) continue;
			if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "for") e.setAttribute(k, String(v));
			else e[k] = v;
		}
	}
	for (const c of children) {
		if (c === null || c === undefined || c === false) continue;
		e.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
	return e;
}

// setText sets a node's text only when it changed (no layout work otherwise).
export function setText(node, text) {
	text = String(text);
	if (node.textContent !== text) node.textContent = text;
}

// clear removes every child of node.
export function clear(node) {
	node.replaceChildren();
}

const nf = new Intl.NumberFormat("en-US");

// num formats a count with thousands separators.
export function num(n) {
	return nf.format(n || 0);
}

// bytes formats a byte count (1024-based, one decimal).
export function bytes(n) {
	n = n || 0;
	if (n < 1024) return n + " B";
	const units = ["KiB", "MiB", "GiB", "TiB"];
	let v = n, u = -1;
	do { v /= 1024; u++; } while (v >= 1024 && u < units.length - 1);
	return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " " + units[u];
}

// duration formats milliseconds for people.
export function duration(ms) {
	if (ms < 1000) return ms + " ms";
	const s = ms / 1000;
	if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
	const m = Math.floor(s / 60);
	if (m < 60) return m + " min " + Math.floor(s % 60) + " s";
	return Math.floor(m / 60) + " h " + (m % 60) + " min";
}

// parseTime reads an RFC 3339 time with any number of fractional digits (Go
// writes nanoseconds) into {date, frac}: a Date to the millisecond and the
// fraction's digits as written.
export function parseTime(s) {
	const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$/.exec(s || "");
	if (!m) return {date: new Date(NaN), frac: ""};
	const frac = m[2] || "";
	return {date: new Date(m[1] + "." + (frac + "000").slice(0, 3) + m[3]), frac};
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

// clock formats a time as local HH:MM:SS.mmm.
export function clock(s) {
	const {date} = parseTime(s);
	if (isNaN(date)) return "";
	return pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) + "." + pad(date.getMilliseconds(), 3);
}

// stamp formats a time as local date and time to the microsecond.
export function stamp(s) {
	const {date, frac} = parseTime(s);
	if (isNaN(date)) return "";
	return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
		pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) + "." + (frac + "000000").slice(0, 6);
}

// copyText puts text on the clipboard, and says so on button for a moment.
export async function copyText(text, button) {
	let ok = false;
	try {
		await navigator.clipboard.writeText(text);
		ok = true;
	} catch {
		// Without clipboard permission (or focus): the old way.
		const ta = el("textarea", {value: text, className: "offscreen"});
		document.body.append(ta);
		ta.select();
		try { ok = document.execCommand("copy"); } catch { ok = false; }
		ta.remove();
	}
	if (button) {
		const old = button.dataset.label || button.textContent;
		button.dataset.label = old;
		button.textContent = ok ? "copied" : "copy failed";
		button.classList.toggle("done", ok);
		clearTimeout(button._t);
		button._t = setTimeout(() => { button.textContent = old; button.classList.remove("done"); }, 1200);
	}
	return ok;
}
