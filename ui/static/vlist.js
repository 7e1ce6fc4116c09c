// VirtualList shows a list of any length (a million rows and more) with a fixed
// row height: only the rows in view, plus a margin, are in the DOM, reused as the
// list scrolls; rows are fetched in blocks by offset as they come into view, and
// cached. Past the height a browser can scroll, the scroll bar maps onto the rows
// proportionally.
//
// The list follows its end (as rows arrive, it stays at the bottom) while it is
// scrolled to the bottom; scrolled elsewhere, it keeps its place.

const BLOCK = 200;          // rows per request
const MARGIN = 8;           // rows kept in the DOM above and below the view
const MAX_HEIGHT = 8e6;     // px: the scroll height past which rows map proportionally
const MAX_BLOCKS = 60;      // blocks kept in the cache
const MAX_LOADS = 3;        // requests in flight

export class VirtualList {
	// opts: rowHeight; fetch(offset, limit, signal) → {total, items};
	// createRow() → element; renderRow(element, item or null); onTotal(total,
	// answer); onSelect(item, index, how); onError(err).
	constructor(root, opts) {
		this.root = root;
		this.o = opts;
		this.H = opts.rowHeight;
		this.total = 0;
		this.blocks = new Map(); // block index → {items, gen, loading}
		this.gen = 0;            // data generation: blocks older than it are stale
		this.qgen = 0;           // query generation: answers to older queries are dropped
		this.pool = [];
		this.follow = true;
		this.selectedId = null;
		this.selIndex = null;
		// The rows live in a box as high as the list, which clips them: the margin
		// rows past the end never make the scroll area grow.
		this.canvas = document.createElement("div");
		this.canvas.className = "vcanvas";
		root.append(this.canvas);
		this.loadTimer = 0;
		this.frame = 0;
		root.addEventListener("scroll", () => {
			this.follow = this.atBottom();
			this.schedule();
		}, {passive: true});
		root.addEventListener("click", ev => {
			const row = ev.target.closest(".row");
			if (!row || row._index === undefined) return;
			const item = this.item(row._index);
			if (item) this.choose(item, row._index, "click");
		});
		new ResizeObserver(() => this.schedule()).observe(root);
	}

	// reset starts over with a new query: the cache is dropped, and the view goes
	// to the row with id anchor (or the next one the query selects) when there is
	// one, else to the end when it followed it, else to the start.
	reset(anchor = null) {
		this.qgen++;
		this.anchor = anchor;
		if (anchor !== null) this.follow = false;
		for (const b of this.blocks.values()) b.loading?.abort();
		this.blocks.clear();
		this.selIndex = null;
		this.pending = null;
		this.locating = false;
		this.total = 0;
		this.known = false;
		this.layout();
		if (!this.follow) this.root.scrollTop = 0;
		this.schedule();
		this.load();
	}

	// refresh marks every cached row stale (the history changed: rows were added,
	// payloads evicted) and fetches again those in view.
	refresh() {
		this.gen++;
		this.load();
	}

	get viewRows() { return Math.max(1, this.root.clientHeight / this.H); }
	get contentHeight() { return Math.min(this.total * this.H, MAX_HEIGHT); }
	get scaled() { return this.total * this.H > MAX_HEIGHT; }

	// rowPos is the (fractional) row at the top of the view.
	rowPos() {
		const st = this.root.scrollTop;
		if (!this.scaled) return st / this.H;
		const room = this.contentHeight - this.root.clientHeight;
		return room <= 0 ? 0 : st / room * Math.max(0, this.total - this.viewRows);
	}

	setRowPos(pos) {
		pos = Math.max(0, Math.min(pos, this.total - this.viewRows));
		if (!this.scaled) this.root.scrollTop = pos * this.H;
		else {
			const span = Math.max(1, this.total - this.viewRows);
			this.root.scrollTop = pos / span * (this.contentHeight - this.root.clientHeight);
		}
		this.follow = this.atBottom();
		this.schedule();
	}

	atBottom() {
		return this.root.scrollTop + this.root.clientHeight >= this.root.scrollHeight - 2;
	}

	// layout sizes the scroll area for the total.
	layout() {
		const h = this.contentHeight + "px";
		if (this.canvas.style.height !== h) this.canvas.style.height = h;
	}

	// setTotal takes a new row count, keeping the rows in view where they are, or
	// the end in view when following.
	setTotal(total) {
		if (total === this.total) return;
		const pos = this.rowPos();
		this.total = total;
		this.layout();
		if (this.follow) this.root.scrollTop = this.root.scrollHeight;
		else if (this.scaled) this.setRowPos(pos);
		if (this.selIndex !== null && this.selIndex >= total) this.selIndex = null;
		this.schedule();
	}

	// scrollToEnd goes to the last row and follows.
	scrollToEnd() {
		this.follow = true;
		this.root.scrollTop = this.root.scrollHeight;
		this.schedule();
	}

	schedule() {
		if (this.frame) return;
		this.frame = requestAnimationFrame(() => {
			this.frame = 0;
			this.render();
			clearTimeout(this.loadTimer);
			this.loadTimer = setTimeout(() => this.load(), 30);
		});
	}

	// range is the rows to have in the DOM: [first, end).
	range() {
		const pos = this.rowPos();
		const first = Math.max(0, Math.floor(pos) - MARGIN);
		const end = Math.min(this.total, Math.ceil(pos + this.viewRows) + MARGIN);
		return [first, end, pos];
	}

	item(i) {
		const b = this.blocks.get(Math.floor(i / BLOCK));
		return b?.items[i % BLOCK];
	}

	render() {
		const [first, end, pos] = this.range();
		const n = Math.max(0, end - first);
		while (this.pool.length < n) {
			const r = this.o.createRow();
			r.classList.add("row");
			r.style.height = this.H + "px";
			this.canvas.append(r);
			this.pool.push(r);
		}
		while (this.pool.length > n) this.pool.pop().remove();
		const st = this.root.scrollTop;
		for (let k = 0; k < n; k++) {
			const i = first + k, r = this.pool[k];
			const top = this.scaled ? st + (i - pos) * this.H : i * this.H;
			const t = Math.round(top) + "px";
			if (r.style.top !== t) r.style.top = t;
			r._index = i;
			const it = this.item(i);
			this.o.renderRow(r, it || null, i);
			const sel = it !== undefined && it.id === this.selectedId;
			if (sel) this.selIndex = i;
			r.classList.toggle("sel", sel);
			r.classList.toggle("odd", i % 2 === 1);
		}
	}

	// load fetches the blocks in view that are missing or stale.
	load() {
		if (!this.known) {
			if (this.locating) return;
			if (this.anchor !== null) this.locate();
			else if (!this.inflight()) this.fetchBlock(this.follow ? -1 : 0);
			return;
		}
		const [first, end] = this.range();
		const want = [];
		for (let b = Math.floor(first / BLOCK); b * BLOCK < Math.max(end, 1); b++) want.push(b);
		// The last block grows: fetch it when the end is in view.
		for (const b of want) {
			const c = this.blocks.get(b);
			if (c?.loading) continue;
			if (!c || c.gen < this.gen || c.items.length < Math.min(BLOCK, this.total - b * BLOCK)) {
				if (this.inflight() >= MAX_LOADS) break;
				this.fetchBlock(b);
			}
		}
		// Stop loading what scrolled out of view; forget the farthest blocks.
		const wanted = new Set(want);
		for (const [b, c] of this.blocks) {
			if (c.loading && !wanted.has(b)) { c.loading.abort(); c.loading = null; if (!c.items.length) this.blocks.delete(b); }
		}
		if (this.blocks.size > MAX_BLOCKS) {
			const mid = want[0] || 0;
			const far = [...this.blocks.keys()].sort((a, b) => Math.abs(b - mid) - Math.abs(a - mid));
			for (const b of far.slice(0, this.blocks.size - MAX_BLOCKS)) if (!wanted.has(b)) this.blocks.delete(b);
		}
	}

	inflight() {
		let n = 0;
		for (const c of this.blocks.values()) if (c.loading) n++;
		return n;
	}

	// locate finds where the anchor row is in the list, and centres the view on it.
	async locate() {
		const qgen = this.qgen, anchor = this.anchor;
		this.locating = true;
		try {
			const res = await this.o.locate(anchor);
			if (qgen !== this.qgen) return;
			this.anchor = null;
			this.known = true;
			this.o.onTotal(res.total, res);
			this.follow = false;
			this.setTotal(res.total);
			this.layout();
			this.setRowPos(res.index - this.viewRows / 2 + 0.5);
			this.load();
		} catch (err) {
			if (qgen !== this.qgen) return;
			this.anchor = null;
			this.o.onError(err);
		} finally {
			if (qgen === this.qgen) this.locating = false;
		}
	}

	// fetchBlock fetches block b (-1: the last block, for a list whose total is not
	// known yet and that follows its end).
	async fetchBlock(b) {
		const qgen = this.qgen, gen = this.gen;
		const ctl = new AbortController();
		let c = this.blocks.get(b);
		if (!c) { c = {items: [], gen: -1, loading: null}; this.blocks.set(b, c); }
		c.loading = ctl;
		try {
			let res;
			if (b === -1) {
				// The end: ask for nothing to learn the total, then for the last block.
				const head = await this.o.fetch(0, 0, ctl.signal);
				if (qgen !== this.qgen) return;
				const last = Math.max(0, Math.floor((head.total - 1) / BLOCK));
				this.blocks.delete(-1);
				c = {items: [], gen: -1, loading: ctl};
				this.blocks.set(last, c);
				b = last;
			}
			res = await this.o.fetch(b * BLOCK, BLOCK, ctl.signal);
			if (qgen !== this.qgen) return;
			c.items = res.items;
			c.gen = gen;
			c.loading = null;
			this.known = true;
			this.o.onTotal(res.total, res);
			this.setTotal(res.total);
			this.schedule();
			if (this.pending) {
				const p = this.pending;
				this.pending = null;
				this.moveTo(p.index, p.how);
			}
		} catch (err) {
			if (c.loading === ctl) c.loading = null;
			if (this.blocks.get(-1) === c) this.blocks.delete(-1);
			if (err.name === "AbortError" || qgen !== this.qgen) return;
			this.o.onError(err);
		}
	}

	// choose selects item (at index) and tells the page.
	choose(item, index, how) {
		this.selectedId = item.id;
		this.selIndex = index;
		this.schedule();
		this.o.onSelect(item, index, how);
	}

	// select marks the row with id as selected, without telling the page.
	select(id) {
		this.selectedId = id;
		this.selIndex = null;
		this.schedule();
	}

	// ensureVisible scrolls the least that shows row i.
	ensureVisible(i) {
		const pos = this.rowPos(), view = Math.floor(this.viewRows);
		if (i < pos) this.setRowPos(i);
		else if (i + 1 > pos + view) this.setRowPos(i + 1 - view);
	}

	// moveTo selects row index (clamped), scrolling it into view and fetching it
	// when needed.
	moveTo(index, how) {
		if (this.total === 0) return;
		index = Math.max(0, Math.min(index, this.total - 1));
		this.ensureVisible(index);
		const it = this.item(index);
		if (it) {
			this.choose(it, index, how);
		} else {
			this.pending = {index, how};
			this.load();
		}
	}

	// move moves the selection by delta rows (from the top or bottom of the view
	// when nothing visible is selected).
	move(delta, how = "key") {
		let from = this.selIndex;
		if (from === null) {
			const [, , pos] = this.range();
			from = delta > 0 ? Math.floor(pos) - 1 : Math.ceil(pos + this.viewRows);
		}
		this.moveTo(from + delta, how);
	}

	page() { return Math.max(1, Math.floor(this.viewRows) - 1); }
}
