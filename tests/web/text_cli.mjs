// The web app's text rule as a filter for tests/test_web.py (parity with ledger/core/text.py).
// stdin: {"texts": ["...", ...]} -> {"visible": [...], "refused": [index or null, ...],
//                                   "copied": [the memo a payment of a request with it carries],
//                                   "hasVisible": [...], "ignorable": [[lo, hi], ...], "blank": [...]}
import { DEFAULT_IGNORABLE, BLANK, firstRefused, hasVisible, memoToCopy, visible } from "../../web/src/text.js";

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const { texts } = JSON.parse(input);
  const refused = texts.map((t) => { const bad = firstRefused(t); return bad ? bad[0] : null; });
  process.stdout.write(JSON.stringify({ visible: texts.map(visible), refused, copied: texts.map(memoToCopy),
    hasVisible: texts.map(hasVisible), ignorable: DEFAULT_IGNORABLE, blank: BLANK }));
});
