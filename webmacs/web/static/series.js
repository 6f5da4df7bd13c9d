// A bounded, time-ordered series of one event's readings, as uPlot wants them: [xs, ys] with
// xs ascending (seconds since the epoch). Appends are O(1) amortised and the chart reads
// zero-copy views, so a busy stream costs no allocation per reading. History is bounded by both
// a point count and an age, so a page left open for days uses the same memory as after a minute.

export class Series {
  constructor(capacity = 5000, maxAgeS = 600) {
    this.capacity = capacity;
    this.maxAgeS = maxAgeS;
    // Twice the capacity: the window slides to the right and is copied back once per
    // `capacity` appends (amortised O(1)) instead of on every append.
    this.xs = new Float64Array(capacity * 2);
    this.ys = new Float64Array(capacity * 2);
    this.start = 0;
    this.end = 0;
  }

  get length() {
    return this.end - this.start;
  }

  get lastX() {
    return this.length ? this.xs[this.end - 1] : -Infinity;
  }

  clear() {
    this.start = this.end = 0;
  }

  push(x, y) {
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    if (this.end === this.xs.length) this.compact();
    if (x >= this.lastX) {
      this.xs[this.end] = x;
      this.ys[this.end] = y;
      this.end++;
    } else {
      this.insertSorted(x, y); // a controller's buffered reading, older than the newest
    }
    this.trim();
  }

  // Merge many points at once (a back-fill from /datapoints/series), in any order.
  merge(points) {
    const all = [];
    for (let i = this.start; i < this.end; i++) all.push([this.xs[i], this.ys[i]]);
    for (const [x, y] of points) if (Number.isFinite(x) && Number.isFinite(y)) all.push([x, y]);
    all.sort((a, b) => a[0] - b[0]);
    const kept = all.slice(-this.capacity);
    this.start = 0;
    this.end = kept.length;
    kept.forEach(([x, y], i) => { this.xs[i] = x; this.ys[i] = y; });
    this.trim();
  }

  view() {
    return [this.xs.subarray(this.start, this.end), this.ys.subarray(this.start, this.end)];
  }

  compact() {
    this.xs.copyWithin(0, this.start, this.end);
    this.ys.copyWithin(0, this.start, this.end);
    this.end -= this.start;
    this.start = 0;
  }

  insertSorted(x, y) {
    let lo = this.start;
    let hi = this.end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.xs[mid] <= x) lo = mid + 1; else hi = mid;
    }
    this.xs.copyWithin(lo + 1, lo, this.end);
    this.ys.copyWithin(lo + 1, lo, this.end);
    this.xs[lo] = x;
    this.ys[lo] = y;
    this.end++;
  }

  trim() {
    if (this.length > this.capacity) this.start = this.end - this.capacity;
    const oldest = this.lastX - this.maxAgeS;
    if (this.length && this.xs[this.start] < oldest) {
      let lo = this.start;
      let hi = this.end;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.xs[mid] < oldest) lo = mid + 1; else hi = mid;
      }
      this.start = lo;
    }
  }
}

// ISO 8601 with an offset (the server's `…+00:00`) → seconds since the epoch, or NaN.
export function epochSeconds(timestamp) {
  return Date.parse(timestamp) / 1000;
}
