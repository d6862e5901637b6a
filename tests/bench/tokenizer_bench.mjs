// Benchmark helper for tests/bench/tokenizer_bench.sh.
//   node tokenizer_bench.mjs gen <corpus> <megabytes>       deterministic mixed chat corpus
//   node tokenizer_bench.mjs count <corpus> <counts-prefix>  token counts with @dqbd/tiktoken
// The corpus is UTF-8 texts separated by NUL bytes; counts are written one per line per
// encoding to <counts-prefix>.<encoding>, so the C driver's output can be compared with cmp.
import { createRequire } from "node:module";
import { readFileSync, writeFileSync, openSync, writeSync, closeSync } from "node:fs";

const ENCODINGS = ["o200k_base", "cl100k_base"];

// mulberry32: small deterministic PRNG, so every run builds the same corpus
function rng(seed) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have from or one " +
  "had by word but not what all were we when your can said there use an each which she do how their if will up " +
  "other about out many then them these so some her would make like him into time has look two more write go see " +
  "number no way could people my than first water been call who oil its now find long down day did get come made " +
  "may part subscription refund invoice account password reset delivery order tracking schedule meeting customer " +
  "support thanks please help question answer deploy build release database query index latency throughput " +
  "configuration kubernetes container certificate authentication authorization quarterly revenue forecast").split(" ");
const ACCENTED = ("café naïve façade déjà vu über straße Ärger Öl Müller señor año niño acción corazón " +
  "żółw łódź Kraków čeština příliš žluťoučký kůň øl smørrebrød Ålesund İstanbul ağaç şişe ğ São João " +
  "Antarktika'yı gördün").split(" ");
const CJK = ["你好，请问有什么可以帮您？", "我们的订单系统今天出现了延迟。", "日本語のテキストと한국어 텍스트",
  "こんにちは、ご注文ありがとうございます。", "配送状況を確認してください。", "감사합니다. 주문이 완료되었습니다.",
  "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"];
const EMOJI = ["😀", "🙏", "👍🏽", "🎉", "❤️", "🇫🇷", "👩‍👩‍👧‍👦", "🚀", "✅", "🤖", "☕", "📦"];
const CODE = [
  "```python\ndef total(items):\n    return sum(i.price * i.qty for i in items if i.qty > 0)\n```",
  "```javascript\nexport async function load(id, opts = {}) {\n  const res = await fetch(`/api/items/${id}`, { method: 'GET' });\n  if (!res.ok) throw new Error(\"HTTP \" + res.status);\n  return res.json();\n}\n```",
  "```sql\nSELECT customer_id, count(*) AS orders\nFROM orders\nWHERE created_at >= now() - interval '30 days'\nGROUP BY 1 ORDER BY 2 DESC LIMIT 10;\n```",
  "```c\nfor (int i = 0; i < n; i++)\n\tif (a[i] != b[i])\n\t\treturn -1;\n```",
  "{\"status\": \"shipped\", \"tracking\": \"1Z999AA10123456784\", \"eta\": \"2024-11-05T14:00:00Z\"}",
];

function pick(r, arr) { return arr[Math.floor(r() * arr.length)]; }

// One chat message of mixed content
function message(r) {
  const parts = [];
  const n = 5 + Math.floor(r() * 60);
  for (let i = 0; i < n; i++) {
    const x = r();
    if (x < 0.70) parts.push(pick(r, WORDS));
    else if (x < 0.78) parts.push(pick(r, ACCENTED));
    else if (x < 0.84) parts.push(String(Math.floor(r() * 10 ** (1 + Math.floor(r() * 8)))));
    else if (x < 0.88) parts.push(pick(r, EMOJI));
    else if (x < 0.93) {
      const s = pick(r, CJK);
      const start = Math.floor(r() * Math.max(1, s.length - 12));
      parts.push(s.slice(start, start + 4 + Math.floor(r() * 20)));
    } else if (x < 0.95) parts.push("\n\n" + pick(r, CODE) + "\n\n");
    else if (x < 0.97) parts.push(pick(r, [".", ",", "!", "?", ":", ";", "...", " -", "(ok)", "'s", "n't", "'LL"]));
    else parts.push(pick(r, ["\n", "\r\n", "  ", "\t", "\u00a0", " \u0085", "\u200b", "\ufeff"]));
  }
  let text = parts.join(" ");
  if (r() < 0.5) text = text.charAt(0).toUpperCase() + text.slice(1);
  return text;
}

function generate(path, megabytes) {
  const r = rng(20241105);
  const fd = openSync(path, "w");
  const target = megabytes * 1024 * 1024;
  let written = 0;
  let texts = 0;
  const sep = Buffer.from([0]);
  while (written < target) {
    const buf = Buffer.from(message(r), "utf8");
    writeSync(fd, buf);
    writeSync(fd, sep);
    written += buf.length + 1;
    texts++;
  }
  closeSync(fd);
  console.log(`corpus: ${texts} texts, ${(written / 1048576).toFixed(1)} MiB`);
}

function count(path, prefix) {
  const require = createRequire(import.meta.url);
  const { get_encoding } = require("@dqbd/tiktoken");
  const data = readFileSync(path);
  const texts = data.toString("utf8").split("\0");
  texts.pop();
  const rss0 = process.memoryUsage().rss;
  const t0 = process.hrtime.bigint();
  const encs = ENCODINGS.map((e) => get_encoding(e));
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const rss = process.memoryUsage().rss;
  console.log(`@dqbd/tiktoken load both encodings: ${loadMs.toFixed(0)} ms, RSS ${(rss / 1048576).toFixed(1)} MiB (+${((rss - rss0) / 1048576).toFixed(1)} MiB)`);
  ENCODINGS.forEach((name, k) => {
    const enc = encs[k];
    const counts = new Array(texts.length);
    let total = 0;
    const start = process.hrtime.bigint();
    for (let i = 0; i < texts.length; i++) {
      const n = enc.encode_ordinary(texts[i]).length;
      counts[i] = n;
      total += n;
    }
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    writeFileSync(`${prefix}.${name}`, counts.join("\n") + "\n");
    console.log(`@dqbd/tiktoken ${name}: ${total} tokens in ${secs.toFixed(2)} s = ${(total / secs / 1e6).toFixed(2)} M tokens/s, ${(data.length / secs / 1048576).toFixed(1)} MiB/s`);
    console.log(`RESULT dqbd ${name} ${total} ${secs}`);
  });
  encs.forEach((e) => e.free());
}

const [cmd, a, b] = process.argv.slice(2);
if (cmd === "gen") generate(a, Number(b));
else if (cmd === "count") count(a, b);
else {
  console.error("usage: tokenizer_bench.mjs gen <corpus> <MiB> | count <corpus> <counts-prefix>");
  process.exit(2);
}
