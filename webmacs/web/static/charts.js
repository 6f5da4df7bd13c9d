// One uPlot chart per charted event. Readings only append to the event's bounded Series and mark
// its chart dirty; a single requestAnimationFrame callback then calls setData once per dirty
// chart. However many readings arrive (1,000/s or more), each chart is drawn at most once per
// frame, and not at all while the tab is hidden (browsers pause animation frames).

import { Series } from "./series.js";

const PALETTE = ["#2f80ed", "#eb5757", "#27ae60", "#f2994a", "#9b51e0", "#00a3a3", "#d4a017", "#e0529c"];
const HEIGHT = 180;

// How many charts to draw in this animation frame. All that changed, while frames come on time;
// when they come late (the machine cannot draw that much: a slow CPU, software rendering, a busy
// core), one chart per slot of `gapMs`, the slot doubling per late frame and halving after a
// run of on-time ones. The page then stays responsive and each chart is redrawn as often as the
// machine allows, in turn. Pure: fed the frames' timestamps.
export class Pacer {
  constructor({ frameMs = 1000 / 60, maxGapMs = 250, calm = 60 } = {}) {
    Object.assign(this, { frameMs, maxGapMs, calm });
    this.gapMs = 0;
    this.last = null;
    this.lastSlot = -Infinity;
    this.onTime = 0;
  }

  // `continuing`: this frame directly follows one that had work left (so a long gap is lateness,
  // not idleness). Returns how many charts may be drawn now.
  frame(now, continuing) {
    if (continuing && this.last !== null) {
      if (now - this.last > 1.5 * this.frameMs) {
        this.gapMs = Math.min(this.maxGapMs, Math.max(this.frameMs, this.gapMs * 2));
        this.onTime = 0;
      } else if (this.gapMs > 0 && ++this.onTime >= this.calm) {
        this.gapMs = this.gapMs / 2 < this.frameMs ? 0 : this.gapMs / 2;
        this.onTime = 0;
      }
    }
    this.last = now;
    if (this.gapMs === 0) return Infinity;
    if (now - this.lastSlot < this.gapMs - 1) return 0;
    this.lastSlot = now;
    return 1;
  }
}

export class Board {
  constructor(container, { capacity = 5000, maxAgeS = 600, onFrame = () => {} } = {}) {
    this.container = container;
    this.capacity = capacity;
    this.maxAgeS = maxAgeS;
    this.onFrame = onFrame; // DOM work that should also happen once per frame (the tiles)
    this.charts = new Map(); // event id → {event, series, plot, figure, dirty, color}
    this.frameRequested = false;
    this.continuing = false; // the last frame left work: the next one follows it directly
    this.next = 0; // the chart the next frame starts with (round robin)
    this.pacer = new Pacer();
    this.draws = 0; // charts drawn so far (for the bench and tests)
    this.resize = new ResizeObserver((entries) => {
      for (const entry of entries) {
        const chart = [...this.charts.values()].find((c) => c.figure === entry.target);
        chart?.plot.setSize({ width: this.widthOf(chart.figure), height: HEIGHT });
      }
    });
    this.frame = this.frame.bind(this);
  }

  has(id) {
    return this.charts.has(id);
  }

  ids() {
    return [...this.charts.keys()];
  }

  add(event) {
    if (this.charts.has(event.public_id)) return;
    const figure = document.createElement("figure");
    figure.className = "chart";
    figure.dataset.eventId = event.public_id;
    const caption = document.createElement("figcaption");
    figure.append(caption);
    this.container.append(figure);
    const color = PALETTE[this.charts.size % PALETTE.length];
    const chart = { event, figure, caption, color, series: new Series(this.capacity, this.maxAgeS),
                    plot: null, dirty: false };
    this.charts.set(event.public_id, chart);
    this.describe(chart, event);
    chart.plot = this.makePlot(chart);
    this.resize.observe(figure);
  }

  // Name or unit changed (events are reloaded now and then).
  describe(chart, event) {
    chart.event = event;
    chart.caption.textContent = `${event.name} (${event.unit})`;
    chart.figure.setAttribute("aria-label", `Chart of ${event.name}`);
  }

  update(event) {
    const chart = this.charts.get(event.public_id);
    if (chart) this.describe(chart, event);
  }

  remove(id) {
    const chart = this.charts.get(id);
    if (!chart) return;
    this.resize.unobserve(chart.figure);
    chart.plot.destroy();
    chart.figure.remove();
    this.charts.delete(id);
  }

  clear() {
    for (const id of this.ids()) this.remove(id);
  }

  push(id, x, y) {
    const chart = this.charts.get(id);
    if (!chart) return;
    chart.series.push(x, y);
    chart.dirty = true;
    this.request();
  }

  merge(id, points) {
    const chart = this.charts.get(id);
    if (!chart) return;
    chart.series.merge(points);
    chart.dirty = true;
    this.request();
  }

  request() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(this.frame);
  }

  frame(now) {
    this.frameRequested = false;
    const charts = [...this.charts.values()];
    const slots = this.pacer.frame(now, this.continuing);
    let drawn = 0;
    for (let k = 0; k < charts.length && drawn < slots; k++) {
      const i = (this.next + k) % charts.length;
      const chart = charts[i];
      if (!chart.dirty) continue;
      chart.dirty = false;
      chart.plot.setData(chart.series.view());
      this.next = i + 1;
      drawn++;
    }
    this.onFrame();
    this.draws += drawn;
    this.continuing = charts.some((c) => c.dirty);
    if (this.continuing) this.request();
  }

  // Colours follow the page's light or dark scheme: rebuild the plots when it changes.
  restyle() {
    for (const chart of this.charts.values()) {
      chart.plot.destroy();
      chart.plot = this.makePlot(chart);
    }
  }

  widthOf(figure) {
    return Math.max(200, figure.clientWidth - 2);
  }

  makePlot(chart) {
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue("--muted").trim() || "#666";
    const grid = css.getPropertyValue("--grid").trim() || "#ddd";
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const opts = {
      width: this.widthOf(chart.figure),
      height: HEIGHT,
      legend: { show: false }, // the event's tile shows the value
      scales: { x: { time: true } },
      axes: [axis, { ...axis, size: 60 }],
      series: [{}, { label: chart.event.name, stroke: chart.color, width: 1.5, points: { show: false } }],
    };
    // uPlot is the vendored global (index.html loads it before this module).
    return new globalThis.uPlot(opts, chart.series.view(), chart.figure);
  }

  pointsOf(id) {
    const chart = this.charts.get(id);
    return chart ? chart.plot.data[0].length : null;
  }
}
