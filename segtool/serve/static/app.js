// The page of `segtool serve`: an image dropped or picked goes to POST segment; the mask, the overlay and
// the cut-out come back in one JSON reply (base64 PNGs) and are shown side by side, each with a download link.
// document.body.dataset.state says where the page is: idle, busy, done or error (tests wait on it).
"use strict";

const KINDS = ["mask", "overlay", "cutout"];
const drop = document.getElementById("drop");
const picker = document.getElementById("file");
const statusLine = document.getElementById("status");
const results = document.getElementById("results");

function setState(state, message) {
  document.body.dataset.state = state;
  statusLine.textContent = message;
}

async function segment(file) {
  if (!file) return;
  setState("busy", `Segmenting ${file.name} ...`);
  const body = new FormData();
  body.append("file", file, file.name);
  let reply;
  try {
    const response = await fetch("segment?output=json&images=" + KINDS.join(","), { method: "POST", body });
    reply = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
    if (!response.ok) throw new Error(reply.error || `${response.status} ${response.statusText}`);
  } catch (error) {
    results.hidden = true;
    setState("error", `${file.name}: ${error.message}`);
    return;
  }
  const stem = file.name.replace(/\.[^.]*$/, "") || "upload";
  const shown = KINDS.map((kind) => {
    const url = "data:image/png;base64," + reply.images[kind];
    const image = document.getElementById(`${kind}-img`);
    const link = document.getElementById(`${kind}-link`);
    link.href = url;
    link.download = `${stem}_${kind}.png`;
    image.src = url;
    return image.decode();
  });
  results.hidden = false;
  await Promise.all(shown).catch(() => {});
  const k = reply.k === null ? "" : `, k ${reply.k.join(", ")}`;
  setState("done", `${file.name}: ${reply.width}x${reply.height}, foreground ${(100 * reply.foreground_fraction).toFixed(1)}%`
                   + `${k}, ${reply.seconds} s`);
}

picker.addEventListener("change", () => {
  const file = picker.files[0];
  picker.value = "";  // so that picking the same file again is a change too
  segment(file);
});

// Anywhere on the page, a dropped file is segmented rather than opened by the browser.
document.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
document.addEventListener("dragleave", () => drop.classList.remove("over"));
document.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  segment(event.dataTransfer.files[0]);
});

fetch("health").then((r) => r.json()).then((health) => {
  const model = health.model ? `, model ${health.model}` : "";
  document.getElementById("server").textContent = `Method ${health.method}${model}, on ${health.device}.`;
}).catch(() => {});
