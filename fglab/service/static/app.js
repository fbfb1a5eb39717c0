// The search page: posts queries to the JSON API and renders result cards. Text from the
// index is always inserted with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

async function readJson(response) {
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return body;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function card(hit) {
  const node = el("article", "card");
  node.dataset.id = hit.id;
  node.tabIndex = 0;
  if (hit.image_url) {
    const img = el("img");
    img.src = hit.image_url;
    img.alt = hit.title || hit.category || hit.id;
    img.loading = "lazy";
    node.append(img);
  } else {
    node.append(el("div", "noimage", hit.modality === "image"
      ? "no image file (features only)" : "article"));
  }
  const body = el("div", "body");
  const head = el("div", "head");
  head.append(el("span", "category", hit.category || "uncategorized"),
    el("span", "score", hit.score.toFixed(3)));
  const title = (hit.title || hit.id).replace(/_/g, " ");
  body.append(head, el("div", "title", title), el("p", "snippet", hit.snippet));
  node.append(body);
  node.addEventListener("click", () => openItem(hit.id));
  node.addEventListener("keydown", (e) => { if (e.key === "Enter") openItem(hit.id); });
  return node;
}

function render(result, label) {
  const grid = $("results");
  grid.replaceChildren(...result.hits.map(card));
  grid.dataset.kind = result.kind;
  const found = `${result.hits.length} ${result.target}s for ${label} (${result.took_ms.toFixed(1)} ms)`;
  setStatus(result.note ? `${found}: ${result.note}` : found);
}

function k() {
  return parseInt($("k").value, 10) || 10;
}

async function searchText(event) {
  event.preventDefault();
  const query = $("query").value;
  setStatus("searching\u2026");
  try {
    const response = await fetch("/search/text", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query, k: k() }),
    });
    render(await readJson(response), `\u201c${query.trim()}\u201d`);
  } catch (error) {
    $("results").replaceChildren();
    setStatus(error.message, true);
  }
}

async function searchImage(event) {
  event.preventDefault();
  const file = $("image").files[0];
  if (!file) { setStatus("choose an image first", true); return; }
  const form = new FormData();
  form.append("file", file);
  form.append("k", String(k()));
  setStatus("searching\u2026");
  try {
    render(await readJson(await fetch("/search/image", { method: "POST", body: form })),
      file.name);
  } catch (error) {
    $("results").replaceChildren();
    setStatus(error.message, true);
  }
}

async function openItem(id) {
  try {
    const item = await readJson(await fetch(`/items/${encodeURIComponent(id)}`));
    $("item-title").textContent = (item.title || item.id).replace(/_/g, " ");
    $("item-meta").textContent = `${item.category || "uncategorized"} \u00b7 ${item.modality} \u00b7 ${item.source}`;
    if (item.image_url) $("item-image").src = item.image_url;
    else $("item-image").removeAttribute("src");
    $("item-text").textContent = item.text;
    $("item").dataset.id = item.id;
    if (!$("item").open) $("item").showModal();
    history.replaceState(null, "", `#item=${encodeURIComponent(item.id)}`);
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function showCollection() {
  try {
    const health = await readJson(await fetch("/health"));
    const items = `${health.items.image} images, ${health.items.text} texts`;
    $("collection").textContent = `${health.collection} \u00b7 ${items} \u00b7 model ${health.method}`;
    if (!health.image_search) {
      $("image").disabled = true;
      $("image-search").disabled = true;
      $("image-form").title = "this model reads precomputed image features, not image files";
    }
  } catch (error) {
    setStatus(error.message, true);
  }
}

$("text-form").addEventListener("submit", searchText);
$("image-form").addEventListener("submit", searchImage);
$("close").addEventListener("click", () => { $("item").close(); history.replaceState(null, "", "#"); });
showCollection();
const opened = location.hash.match(/^#item=(.+)$/);
if (opened) openItem(decodeURIComponent(opened[1]));
