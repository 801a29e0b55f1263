// archive-twins review pages. Static, no server: data comes from data/*.js
// (window.ATW_DATA), so the pages work opened from disk (file://).
// Every filename is put in the page with textContent, never as HTML.
"use strict";

(function () {
  const D = window.ATW_DATA;
  const PAGE_SIZE = 24;
  // Files and items come as compact arrays; D.fields names their columns (html.py
  // derives them from the records), so they are read by name here, never by position.
  const named = (names) => (row) => Object.fromEntries(names.map((k, i) => [k, row[i]]));
  const F = D.files.map(named(D.fields.file));
  const ITEMS = D.items.map(named(D.fields.item));
  const state = { page: 0, q: "", min: "", max: "", mirror: "any", sort: "default",
                  sel: 0, rows: [], flicker: null };

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const kid of kids) if (kid) e.appendChild(kid);
    return e;
  }

  function fmtSize(n) {
    if (n == null) return "";
    const u = ["B", "KB", "MB", "GB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + u[i];
  }

  function fileLine(fi) {
    const f = F[fi];
    // <bdi>: a right-to-left override in one name cannot reorder the text after it
    const a = el("a", { class: "fname", href: f.href, title: "open the original file" },
      el("bdi", { text: f.filename }));
    const facts = ` ${f.width}×${f.height} ${f.format || ""} ${fmtSize(f.size_bytes)}`;
    return el("div", { class: "file" }, a, el("span", { class: "facts", text: facts }));
  }

  function thumb(fi, cls) {
    const f = F[fi];
    const img = el("img", { src: f.thumb, class: cls || "thumb", loading: "lazy", alt: "" });
    img.width = f.thumb_w;
    img.height = f.thumb_h;
    return img;
  }

  // Thumbnails hold the raw (unrotated) pixels that matching uses; the side-by-side
  // view shows them as a viewer would, turned by the file's EXIF Orientation.
  const ORIENT = { 2: "scaleX(-1)", 3: "rotate(180deg)", 4: "scaleY(-1)",
                   5: "rotate(-90deg) scaleX(-1)", 6: "rotate(90deg)",
                   7: "rotate(90deg) scaleX(-1)", 8: "rotate(-90deg)" };

  function oriented(img, fi) {
    const f = F[fi];
    const o = f.exif_orientation;
    if (!ORIENT[o] || !f.thumb_w || !f.thumb_h) return img;
    const s = Math.min(176 / f.thumb_w, 176 / f.thumb_h, 1);
    const w = f.thumb_w * s, h = f.thumb_h * s, swap = o >= 5;
    const box = el("span", { class: "orient", title: `EXIF orientation ${o}` });
    box.style.width = (swap ? h : w) + "px";
    box.style.height = (swap ? w : h) + "px";
    img.style.width = w + "px";
    img.style.height = h + "px";
    img.style.transform = `translate(-50%, -50%) ${ORIENT[o]}`;
    box.appendChild(img);
    return box;
  }

  // ---- pairs ---------------------------------------------------------------------
  // pair: file1, file2 (indexes into F), then the copy_pairs columns (kind, scale, angle,
  // mirrored, crop_x..crop_h, homography as 9 numbers, inliers, score, method, ...)

  function invert3(m) {
    const [a, b, c, d, e, f, g, h, i] = m;
    const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
    const det = a * A + b * B + c * C;
    return [A / det, -(b * i - c * h) / det, (b * f - c * e) / det,
            B / det, (a * i - c * g) / det, -(a * f - c * d) / det,
            C / det, -(a * h - b * g) / det, (a * e - b * d) / det];
  }

  function mul3(p, q) {
    const r = new Array(9).fill(0);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++)
        for (let k = 0; k < 3; k++) r[3 * i + j] += p[3 * i + k] * q[3 * k + j];
    return r;
  }

  // CSS transform that draws file2's thumbnail (natural size) in file1's display frame:
  // display <- file1 pixels <- (H^-1) file2 pixels <- file2 thumbnail pixels.
  function alignMatrix(pair, displayScale) {
    const f2 = F[pair.file2];
    const s2 = [f2.width / f2.thumb_w, 0, 0, 0, f2.height / f2.thumb_h, 0, 0, 0, 1];
    const d = [displayScale, 0, 0, 0, displayScale, 0, 0, 0, 1];
    const m = mul3(d, mul3(invert3(pair.homography), s2));
    const n = m.map((v) => v / m[8]);
    return `matrix3d(${n[0]},${n[3]},0,${n[6]},${n[1]},${n[4]},0,${n[7]},0,0,1,0,${n[2]},${n[5]},0,${n[8]})`;
  }

  function paramText(p) {
    const parts = [p.kind];
    if (p.kind === "rotate90i" || p.angle) parts.push(`angle ${+p.angle.toFixed(2)}°`);
    parts.push(`scale ${+p.scale.toFixed(4)}`);
    if (p.mirrored) parts.push("mirrored");
    if (p.colour_change) parts.push("colour change");
    if (p.kind === "other") {
      const [x, y, w, h] = [p.crop_x, p.crop_y, p.crop_w, p.crop_h].map((v) => v.toFixed(0));
      parts.push(`crop ${x},${y} ${w}×${h}`);
      parts.push(`area ${(100 * p.area_fraction).toFixed(1)}%`);
    }
    if (p.inliers != null) parts.push(`${p.inliers} inliers`);
    parts.push(`score ${(+p.score).toFixed(3)}`, p.method);
    // what made file 1 the source: "source by date" says the pixels could not tell
    if (p.direction_by) parts.push(`source by ${p.direction_by}`);
    return parts.join(" · ");
  }

  function pairCard(p, idx) {
    const f1 = F[p.file1];
    const width = 360;
    const ds = width / f1.width;
    const frame = el("div", { class: "frame" });
    frame.style.width = `${width}px`;
    frame.style.height = `${Math.round(f1.height * ds)}px`;
    const base = thumb(p.file1, "base");
    base.style.width = `${width}px`;
    base.style.height = `${Math.round(f1.height * ds)}px`;
    const top = thumb(p.file2, "overlay");
    top.style.transform = alignMatrix(p, ds);
    frame.append(base, top);
    const side = el("div", { class: "side" }, oriented(thumb(p.file1), p.file1),
      oriented(thumb(p.file2), p.file2));
    const flick = el("button", { class: "flicker", text: "flicker (f)",
                                 onclick: () => toggleFlicker(card) });
    const view = el("button", { class: "view", text: "blend (b)",
                                onclick: () => toggleBlend(card) });
    const card = el("article", { class: "card", "data-index": String(idx) },
      el("div", { class: "params", text: paramText(p) }),
      fileLine(p.file1), fileLine(p.file2),
      el("div", { class: "tools" }, flick, view), frame, side);
    card.addEventListener("click", () => select(idx));
    return card;
  }

  function toggleFlicker(card) {
    if (state.flicker) {
      clearInterval(state.flicker.timer);
      state.flicker.card.classList.remove("flickering", "show-copy");
      const same = state.flicker.card === card;
      state.flicker = null;
      if (same) return;
    }
    card.classList.remove("blend");
    card.classList.add("flickering");
    const timer = setInterval(() => card.classList.toggle("show-copy"), 450);
    state.flicker = { card, timer };
  }

  function toggleBlend(card) {
    if (state.flicker && state.flicker.card === card) toggleFlicker(card);
    card.classList.toggle("blend");
  }

  function sideBySide(card) {
    if (state.flicker && state.flicker.card === card) toggleFlicker(card);
    card.classList.remove("blend");
  }

  // ---- sets ----------------------------------------------------------------------

  function setCard(s, idx) {
    const kind = s.kind === "identical" ? "byte-identical" : "same pixels, different bytes";
    const card = el("article", { class: "card set", "data-index": String(idx) },
      el("div", { class: "params", text: `${kind} · ${s.files.length} files` }));
    for (const fi of s.files) card.appendChild(fileLine(fi));
    card.appendChild(el("div", { class: "side" }, ...s.files.slice(0, 6).map((fi) => oriented(thumb(fi), fi))));
    card.addEventListener("click", () => select(idx));
    return card;
  }

  // ---- filtering, paging, keyboard -----------------------------------------------

  function names(item) {
    const files = D.mode === "sets" ? item.files : [item.file1, item.file2];
    return files.map((i) => F[i].filename);
  }

  function param(item) {
    // a set's size, or the pair column the page is about (D.param_field, from html.py)
    return D.mode === "sets" ? item.files.length : item[D.param_field];
  }

  function filtered() {
    const q = state.q.toLowerCase();
    const lo = state.min === "" ? -Infinity : +state.min;
    const hi = state.max === "" ? Infinity : +state.max;
    let rows = ITEMS.filter((it) => {
      if (q && !names(it).some((n) => n.toLowerCase().includes(q))) return false;
      const v = param(it);
      if (v < lo || v > hi) return false;
      if (D.mode !== "sets" && state.mirror !== "any" && String(it.mirrored) !== state.mirror) return false;
      if (D.mode === "sets" && state.mirror !== "any" && it.kind !== state.mirror) return false;
      return true;
    });
    if (state.sort === "param") rows = rows.slice().sort((a, b) => param(a) - param(b));
    if (state.sort === "score" && D.mode !== "sets")
      rows = rows.slice().sort((a, b) => a.score - b.score);
    return rows;
  }

  function render() {
    if (state.flicker) toggleFlicker(state.flicker.card);
    state.rows = filtered();
    const pages = Math.max(1, Math.ceil(state.rows.length / PAGE_SIZE));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const list = document.getElementById("list");
    list.replaceChildren();
    const start = state.page * PAGE_SIZE;
    state.rows.slice(start, start + PAGE_SIZE).forEach((it, i) => {
      list.appendChild(D.mode === "sets" ? setCard(it, i) : pairCard(it, i));
    });
    document.getElementById("pageinfo").textContent =
      `page ${state.page + 1} of ${pages} · ${state.rows.length} of ${ITEMS.length} ${D.unit}`;
    state.sel = Math.min(state.sel, Math.max(0, list.children.length - 1));
    select(state.sel, false);
    history.replaceState(null, "", `#page=${state.page + 1}`);
  }

  function select(i, scroll = true) {
    const cards = document.querySelectorAll("#list .card");
    cards.forEach((c) => c.classList.remove("selected"));
    if (!cards.length) return;
    state.sel = Math.max(0, Math.min(i, cards.length - 1));
    cards[state.sel].classList.add("selected");
    if (scroll) cards[state.sel].scrollIntoView({ block: "nearest" });
  }

  function go(delta) { state.page += delta; state.sel = 0; render(); }

  function controls() {
    const bar = document.getElementById("controls");
    const input = (id, ph, key, type) => {
      const e = el("input", { id, placeholder: ph, type: type || "text" });
      e.addEventListener("input", () => { state[key] = e.value; state.page = 0; render(); });
      return e;
    };
    const mirrorSel = el("select", { id: "mirror" });
    const opts = D.mode === "sets"
      ? [["any", "all sets"], ["identical", "byte-identical"], ["same_pixels", "same pixels"]]
      : [["any", "mirrored or not"], ["1", "mirrored"], ["0", "not mirrored"]];
    for (const [v, t] of opts) mirrorSel.appendChild(el("option", { value: v, text: t }));
    mirrorSel.addEventListener("change", () => { state.mirror = mirrorSel.value; state.page = 0; render(); });
    const sortSel = el("select", { id: "sort" });
    for (const [v, t] of [["default", "file order"], ["param", `by ${D.param}`], ["score", "by score"]])
      sortSel.appendChild(el("option", { value: v, text: t }));
    sortSel.addEventListener("change", () => { state.sort = sortSel.value; render(); });
    bar.append(
      input("search", "search filenames…", "q"),
      el("label", { text: ` ${D.param} ` }), input("pmin", "min", "min", "number"),
      input("pmax", "max", "max", "number"), mirrorSel, sortSel,
      el("button", { id: "prev", text: "◀ prev (p)", onclick: () => go(-1) }),
      el("span", { id: "pageinfo" }),
      el("button", { id: "next", text: "next (n) ▶", onclick: () => go(1) }));
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT") return;
    const cards = document.querySelectorAll("#list .card");
    if (ev.key === "n" || ev.key === "ArrowRight") go(1);
    else if (ev.key === "p" || ev.key === "ArrowLeft") go(-1);
    else if (ev.key === "j" || ev.key === "ArrowDown") { select(state.sel + 1); ev.preventDefault(); }
    else if (ev.key === "k" || ev.key === "ArrowUp") { select(state.sel - 1); ev.preventDefault(); }
    else if (ev.key === "f" && cards[state.sel] && D.mode !== "sets") toggleFlicker(cards[state.sel]);
    else if (ev.key === "b" && cards[state.sel] && D.mode !== "sets") toggleBlend(cards[state.sel]);
    else if (ev.key === "s" && cards[state.sel]) sideBySide(cards[state.sel]);
    else if (ev.key === "/") { document.getElementById("search").focus(); ev.preventDefault(); }
  });

  document.title = D.title;
  document.getElementById("title").textContent = D.title;
  const m = /page=(\d+)/.exec(location.hash);
  if (m) state.page = +m[1] - 1;
  controls();
  render();
  document.body.dataset.ready = "1";
})();
