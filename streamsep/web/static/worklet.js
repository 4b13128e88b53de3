// streamsep audio player: a jitter buffer per role ("dry" = mix, "wet" = the chosen stem),
// mixed by the wet/dry slider. Plays once `target` seconds are buffered; an underrun outputs
// silence and re-buffers; more than target + 1 s buffered skips the oldest back to target.
class Fifo {
  constructor(n) { this.buf = new Float32Array(n); this.r = 0; this.w = 0; this.size = 0; }
  push(x) {
    for (let i = 0; i < x.length; i++) {
      if (this.size === this.buf.length) { this.r = (this.r + 1) % this.buf.length; this.size--; }
      this.buf[this.w] = x[i]; this.w = (this.w + 1) % this.buf.length; this.size++;
    }
  }
  pull(out, n, g) {   // adds g * the next n samples into out (zeros when short)
    const m = Math.min(n, this.size);
    for (let i = 0; i < m; i++) { out[i] += g * this.buf[this.r]; this.r = (this.r + 1) % this.buf.length; }
    this.size -= m; return m;
  }
  skip(n) { const m = Math.min(n, this.size); this.r = (this.r + m) % this.buf.length; this.size -= m; }
  clear() { this.r = this.w = this.size = 0; }
}

class Player extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions; this.rate = o.rate; this.target = o.target;
    this.fifo = { dry: new Fifo(this.rate * 10), wet: new Fifo(this.rate * 10) };
    this.wet = 1; this.playing = false; this.underruns = 0; this.skipped = 0; this.n = 0;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.samples) this.fifo[m.role].push(m.samples);
      if (m.wet !== undefined) { this.wet = m.wet; this.target = m.target; }
      if (m.reset) { this.fifo.dry.clear(); this.fifo.wet.clear(); this.playing = false; }
    };
  }
  buffered() {   // the roles in use advance together
    const d = this.fifo.dry.size, w = this.fifo.wet.size;
    return d && w ? Math.min(d, w) : Math.max(d, w);
  }
  process(inputs, outputs) {
    const out = outputs[0][0]; out.fill(0); const n = out.length;
    const have = this.buffered();
    if (!this.playing && have >= this.target * this.rate) this.playing = true;
    if (this.playing && have > (this.target + 1) * this.rate) {
      const extra = have - Math.round(this.target * this.rate);
      this.fifo.dry.skip(extra); this.fifo.wet.skip(extra); this.skipped += extra;
    }
    if (this.playing) {
      if (this.buffered() < n) { this.playing = false; this.underruns++; }
      else { this.fifo.dry.pull(out, n, 1 - this.wet); this.fifo.wet.pull(out, n, this.wet); }
    }
    if (++this.n % 50 === 0) {
      this.port.postMessage({ buffered_ms: 1000 * this.buffered() / this.rate, underruns: this.underruns,
                              skipped: this.skipped, playing: this.playing });
    }
    return true;
  }
}
registerProcessor("ssep-player", Player);
