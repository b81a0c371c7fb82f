// The draw-a-digit page: strokes on a canvas, sent to /api/predict as a PNG while drawing.
"use strict";

// The pad is 280 canvas units wide whatever its size on screen. Preprocessing scales a digit's
// box to 20 of 28 pixels, so the pen's width is relative to the digit's height: with a 26-unit
// pen a digit about 190 units tall ends up with as much ink as an average MNIST digit.
const PEN_WIDTH = 26;
// While the pen moves, at most one prediction per interval: live, without a request per event.
// One request is in flight at a time; the drawing as it is when the answer arrives goes next.
const LIVE_INTERVAL_MS = 150;
// The drawing is sent at half size: five times the network's 28 pixels is detail enough, and
// the server's preprocessing of a quarter of the pixels takes about a third of the CPU time
// (docs/benchmarks.md).
const SEND_SIZE = 140;
// The server's limit on a request body (MAX_BODY_BYTES in digitnet/web/payload.py). A file is
// sent base64-encoded, four bytes for every three, in a data URL inside a JSON object: the
// prefix and the JSON around it take less than BODY_OVERHEAD_BYTES.
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const BODY_OVERHEAD_BYTES = 128;
const TOO_LARGE = "Picture too large (limit 16 MiB).";
const UNREACHABLE = "Cannot reach the digitnet server. Is the serve command still running?";
const DRAW_PROMPT = "Draw a digit on the pad.";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const ui = {
  body: document.body,
  dropZone: document.getElementById("drop-zone"),
  undo: document.getElementById("undo"),
  clear: document.getElementById("clear"),
  choose: document.getElementById("choose"),
  file: document.getElementById("file"),
  prediction: document.getElementById("prediction"),
  confidence: document.getElementById("confidence"),
  status: document.getElementById("status"),
  bars: document.getElementById("bars"),
  answerCard: document.getElementById("answer-title").parentElement,
  seen: document.getElementById("seen"),
  hidden: document.getElementById("hidden"),
  modelName: document.getElementById("model-name"),
};

const state = {
  strokes: [], // each an array of [x, y] points in canvas units
  drawing: null, // the stroke under the pointer, or null
  picture: null, // an image file shown under the strokes, or null
  pictureData: null, // that file as a data URL, sent as is until someone draws on it
  timer: null, // the next live prediction while the pen moves, or null
  request: null, // AbortController of the request in flight, or null
  sentAt: 0, // when that request was sent, in performance.now() milliseconds
  pending: false, // the pad changed after the request in flight was sent
  activation: "sigmoid", // the hidden units' activation function, from /api/health
};

// ---- drawing ------------------------------------------------------------------------------

function canvasPoint(event) {
  const box = pad.getBoundingClientRect();
  return [
    ((event.clientX - box.left) / box.width) * pad.width,
    ((event.clientY - box.top) / box.height) * pad.height,
  ];
}

function paintStroke(points) {
  ctx.lineWidth = PEN_WIDTH;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = "#000";
  ctx.beginPath();
  ctx.moveTo(points[0][0], points[0][1]);
  for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
  if (points.length === 1) ctx.lineTo(points[0][0] + 0.1, points[0][1]);
  ctx.stroke();
}

function paintPicture(image) {
  const scale = Math.min(pad.width / image.width, pad.height / image.height);
  const width = image.width * scale;
  const height = image.height * scale;
  ctx.drawImage(image, (pad.width - width) / 2, (pad.height - height) / 2, width, height);
}

function redraw() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  if (state.picture) paintPicture(state.picture);
  for (const stroke of state.strokes) paintStroke(stroke);
  ui.undo.disabled = state.strokes.length === 0;
}

function drawingAsPng() {
  const small = document.createElement("canvas");
  small.width = SEND_SIZE;
  small.height = SEND_SIZE;
  small.getContext("2d").drawImage(pad, 0, 0, SEND_SIZE, SEND_SIZE);
  return small.toDataURL("image/png");
}

function isEmpty() {
  return state.strokes.length === 0 && state.picture === null;
}

function startStroke(event) {
  // One pen at a time: a second finger or the right mouse button does not draw.
  if (event.button !== 0 || !event.isPrimary || state.drawing !== null) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  state.drawing = [canvasPoint(event)];
  state.strokes.push(state.drawing);
  state.pictureData = null;
  redraw();
  schedulePrediction();
}

function extendStroke(event) {
  if (state.drawing === null || !event.isPrimary) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const each of events.length ? events : [event]) state.drawing.push(canvasPoint(each));
  redraw();
  schedulePrediction();
}

function endStroke(event) {
  if (state.drawing === null || !event.isPrimary) return;
  state.drawing = null;
  predictNow();
}

function undo() {
  if (state.strokes.length === 0) return;
  state.strokes.pop();
  state.pictureData = null;
  redraw();
  predictNow();
}

function clearPad() {
  state.strokes = [];
  state.picture = null;
  state.pictureData = null;
  redraw();
  predictNow();
}

// ---- image files --------------------------------------------------------------------------

function readFile(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showError(`${file.name} is not an image file.`);
    return;
  }
  if (encodedSize(file) > MAX_BODY_BYTES) {
    const mib = (file.size / (1024 * 1024)).toFixed(1);
    showError(`${TOO_LARGE} ${file.name} is ${mib} MiB, a third more once encoded to send.`);
    return;
  }
  setBusy(true);
  const reader = new FileReader();
  reader.onerror = () => showError(`Could not read ${file.name}.`);
  reader.onload = () => showPicture(reader.result, file.name);
  reader.readAsDataURL(file);
}

function encodedSize(file) {
  return 4 * Math.ceil(file.size / 3) + file.type.length + BODY_OVERHEAD_BYTES;
}

function showPicture(dataUrl, name) {
  const image = new Image();
  image.onload = () => {
    state.strokes = [];
    state.picture = image;
    state.pictureData = dataUrl;
    redraw();
    predictNow();
  };
  // The browser may not display every format Pillow reads: let the server judge the file.
  image.onerror = () => {
    state.strokes = [];
    state.picture = null;
    state.pictureData = dataUrl;
    redraw();
    predictNow();
  };
  image.alt = name;
  image.src = dataUrl;
}

// ---- talking to the server ----------------------------------------------------------------

function setBusy(busy) {
  ui.body.dataset.busy = busy ? "true" : "false";
}

function schedulePrediction() {
  setBusy(true);
  if (state.request) state.pending = true;
  else if (state.timer === null) state.timer = setTimeout(predictNow, LIVE_INTERVAL_MS);
}

function predictNow() {
  clearTimeout(state.timer);
  state.timer = null;

  if (isEmpty() && state.pictureData === null) {
    // An answer still on its way would be about strokes that are gone.
    if (state.request) state.request.abort();
    state.request = null;
    state.pending = false;
    showNoDigit(DRAW_PROMPT);
    setBusy(false);
    return;
  }
  if (state.request) {
    state.pending = true;
    return;
  }
  sendPrediction();
}

async function sendPrediction() {
  const controller = new AbortController();
  state.request = controller;
  state.sentAt = performance.now();
  state.pending = false;
  setBusy(true);
  const image = state.pictureData || drawingAsPng();
  try {
    const response = await fetch("/api/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ image }),
      signal: controller.signal,
    });
    const answer = await readAnswer(response);
    if (state.request !== controller) return;
    showAnswer(answer);
  } catch (error) {
    if (state.request !== controller) return;
    // fetch rejects with a TypeError when no answer arrives at all.
    showError(error instanceof TypeError ? UNREACHABLE : error.message);
  }
  state.request = null;
  sendWhatChanged();
}

// After an answer, the pad as it is now, if it changed meanwhile: at once when the request took
// longer than the live interval, else when the interval is over.
function sendWhatChanged() {
  if (state.pending) {
    state.pending = false;
    const wait = Math.max(0, state.sentAt + LIVE_INTERVAL_MS - performance.now());
    state.timer = setTimeout(predictNow, wait);
  }
  setBusy(state.timer !== null);
}

async function readAnswer(response) {
  let answer = null;
  try {
    answer = await response.json();
  } catch (error) {
    answer = null;
  }
  if (response.ok && answer) return answer;
  // A body past the server's limit may be refused by waitress itself, in plain text.
  if (response.status === 413) throw new Error(TOO_LARGE);
  const reason = answer && answer.error ? answer.error : `HTTP ${response.status}`;
  throw new Error(`The server refused the request: ${reason}`);
}

// ---- showing the answer -------------------------------------------------------------------

function buildBars() {
  for (let digit = 0; digit < 10; digit += 1) {
    const row = document.createElement("li");
    row.innerHTML =
      `<span class="label">${digit}</span>` +
      '<span class="track"><span class="fill"></span></span>' +
      '<span class="value">0%</span>';
    ui.bars.appendChild(row);
  }
  buildHiddenCells(128);
}

function buildHiddenCells(count) {
  ui.hidden.replaceChildren();
  for (let unit = 0; unit < count; unit += 1) {
    ui.hidden.appendChild(document.createElement("span"));
  }
  document.getElementById("hidden-count").textContent = String(count);
}

function showBars(probabilities, top) {
  [...ui.bars.children].forEach((row, digit) => {
    const p = probabilities ? probabilities[digit] : 0;
    row.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".value").textContent = `${Math.round(100 * p)}%`;
    row.classList.toggle("top", digit === top);
    row.setAttribute("aria-label", `${digit}: ${Math.round(100 * p)} percent`);
  });
}

function showSeen(rows) {
  const seen = ui.seen.getContext("2d");
  const pixels = seen.createImageData(28, 28);
  for (let i = 0; i < 28 * 28; i += 1) {
    const level = rows ? Math.round(255 * rows[Math.floor(i / 28)][i % 28]) : 0;
    pixels.data.set([level, level, level, 255], 4 * i);
  }
  seen.putImageData(pixels, 0, 0);
}

function showHidden(activations) {
  if (activations && activations.length !== ui.hidden.children.length) {
    buildHiddenCells(activations.length);
  }
  const brightness = brightnessScale(activations);
  [...ui.hidden.children].forEach((cell, unit) => {
    const a = activations ? activations[unit] : 0;
    const level = activations ? Math.round(255 * brightness(a)) : 0;
    const [green, blue] = [Math.round(level * 0.85), Math.round(level * 0.3)];
    cell.style.background = `rgb(${level}, ${green}, ${blue})`;
    cell.title = activations ? `unit ${unit}: ${a.toFixed(2)}` : `unit ${unit}`;
  });
}

// A function from an activation to a brightness in [0, 1], by the range of the hidden units:
// sigmoid [0, 1] as is, tanh [-1, 1] with 0 at half brightness, ReLU [0, inf) by the largest
// activation of this answer.
function brightnessScale(activations) {
  if (state.activation === "tanh") return (a) => (a + 1) / 2;
  if (state.activation === "relu") {
    const largest = activations ? Math.max(...activations) : 0;
    return (a) => (largest > 0 ? a / largest : 0);
  }
  return (a) => a;
}

function showAnswer(answer) {
  clearError();
  if (answer.digit === null) {
    showNoDigit(answer.message || "The network found nothing to read.");
    return;
  }
  const p = answer.probabilities[answer.digit];
  ui.prediction.textContent = String(answer.digit);
  ui.prediction.dataset.digit = String(answer.digit);
  ui.confidence.textContent = `probability ${Math.round(100 * p)}%`;
  showBars(answer.probabilities, answer.digit);
  showSeen(answer.input);
  showHidden(answer.hidden);
}

function showNoDigit(message) {
  clearError();
  ui.prediction.textContent = "no digit";
  ui.prediction.dataset.digit = "";
  ui.confidence.textContent = message;
  showBars(null, -1);
  showSeen(null);
  showHidden(null);
}

function showError(message) {
  ui.prediction.textContent = "?";
  ui.prediction.dataset.digit = "";
  ui.confidence.textContent = "no answer";
  ui.status.textContent = message;
  ui.status.hidden = false;
  ui.answerCard.classList.add("stale");
  setBusy(false);
}

function clearError() {
  ui.status.hidden = true;
  ui.status.textContent = "";
  ui.answerCard.classList.remove("stale");
}

async function showModelName() {
  let health = null;
  try {
    health = await readAnswer(await fetch("/api/health"));
  } catch (error) {
    showError(error instanceof TypeError ? UNREACHABLE : error.message);
    return;
  }
  ui.modelName.textContent = `Model: ${health.model}, layers ${health.sizes.join("-")}.`;
  state.activation = health.activation;
  buildHiddenCells(health.sizes[1]);
}

// ---- wiring -------------------------------------------------------------------------------

function onKey(event) {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
  } else if (event.key === "Escape") {
    clearPad();
  }
}

function onDrop(event) {
  event.preventDefault();
  ui.dropZone.classList.remove("dragging");
  readFile(event.dataTransfer.files[0]);
}

function wire() {
  pad.addEventListener("pointerdown", startStroke);
  pad.addEventListener("pointermove", extendStroke);
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
  ui.undo.addEventListener("click", undo);
  ui.clear.addEventListener("click", clearPad);
  ui.choose.addEventListener("click", () => ui.file.click());
  ui.file.addEventListener("change", () => {
    readFile(ui.file.files[0]);
    ui.file.value = "";
  });
  document.addEventListener("keydown", onKey);
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", onDrop);
  ui.dropZone.addEventListener("dragenter", () => ui.dropZone.classList.add("dragging"));
  ui.dropZone.addEventListener("dragleave", () => ui.dropZone.classList.remove("dragging"));
}

buildBars();
wire();
redraw();
showNoDigit(DRAW_PROMPT);
showModelName();
