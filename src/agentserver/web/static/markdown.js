// A small Markdown parser for answers: text in, a tree of plain objects out (app.js builds DOM nodes from
// it with createElement/textContent). Nothing here ever produces HTML, so model or user text that looks
// like HTML stays text: sanitising by construction. Links keep only http(s) and mailto addresses.
// Covers what chat answers use: headings, paragraphs, emphasis, inline code, fenced code blocks, lists
// (nested), block quotes, GitHub tables, rules, links. An unclosed fence (an answer still streaming) runs to
// the end of the text.
"use strict";

const FENCE_RE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$/;
const HEADING_RE = /^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
const RULE_RE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE_RE = /^ {0,3}> ?/;
const LIST_RE = /^( *)([-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$/;
const TABLE_DELIMITER_RE = /^ *\|? *:?-+:? *(?:\| *:?-+:? *)*\|? *$/;
const SAFE_URL_RE = /^(?:https?:\/\/|mailto:)/i;
const ESCAPABLE = "\\`*_{}[]()#+-.!|~>";

function indentOf(line) { return line.length - line.trimStart().length; }

function startsBlock(line) {
  return FENCE_RE.test(line) || HEADING_RE.test(line) || RULE_RE.test(line) || QUOTE_RE.test(line)
    || LIST_RE.test(line);
}

function splitRow(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  const cells = [];
  let cell = "";
  for (let i = 0; i < row.length; i++) {
    if (row[i] === "\\" && row[i + 1] === "|") { cell += "|"; i++; } else if (row[i] === "|") { cells.push(cell.trim()); cell = ""; } else cell += row[i];
  }
  cells.push(cell.trim());
  return cells;
}

function isTableStart(lines, i) {
  return i + 1 < lines.length && lines[i].includes("|") && TABLE_DELIMITER_RE.test(lines[i + 1])
    && lines[i + 1].includes("-") && splitRow(lines[i]).length === splitRow(lines[i + 1]).length;
}

function parseList(lines, start) {
  const first = LIST_RE.exec(lines[start]);
  const ordered = /\d/.test(first[2]);
  const baseIndent = first[1].length;
  const list = { type: ordered ? "ol" : "ul", start: ordered ? parseInt(first[2], 10) : 1, items: [] };
  let i = start;
  while (i < lines.length) {
    const m = LIST_RE.exec(lines[i]);
    if (!m || m[1].length !== baseIndent || /\d/.test(m[2]) !== ordered) break;
    const contentIndent = m[1].length + m[2].length + 1;
    const itemLines = [m[3] || ""];
    i++;
    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) {
        let j = i + 1;
        while (j < lines.length && !lines[j].trim()) j++;
        if (j < lines.length && indentOf(lines[j]) >= contentIndent) {
          for (; i < j; i++) itemLines.push("");
          continue;
        }
        break;
      }
      const indent = indentOf(line);
      if (indent >= contentIndent) { itemLines.push(line.slice(contentIndent)); i++; continue; }
      const nested = LIST_RE.exec(line);
      if (nested && nested[1].length > baseIndent) { itemLines.push(line.slice(indent)); i++; continue; }
      if (startsBlock(line)) break;
      itemLines.push(line.trim());  // a lazy continuation of the item's paragraph
      i++;
    }
    list.items.push(parseBlocks(itemLines));
    let j = i;
    while (j < lines.length && !lines[j].trim()) j++;
    if (j > i && j < lines.length) {
      const next = LIST_RE.exec(lines[j]);
      if (next && next[1].length === baseIndent && /\d/.test(next[2]) === ordered) i = j;
    }
  }
  return [list, i];
}

function parseBlocks(lines) {
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i++; continue; }
    const fence = FENCE_RE.exec(line);
    if (fence) {
      const marker = fence[1];
      const body = [];
      i++;
      while (i < lines.length) {
        const close = lines[i].trim();
        if (close.startsWith(marker[0].repeat(marker.length)) && /^(`+|~+)$/.test(close)) { i++; break; }
        body.push(lines[i]);
        i++;
      }
      blocks.push({ type: "code", lang: fence[2].toLowerCase(), text: body.join("\n") });
      continue;
    }
    const heading = HEADING_RE.exec(line);
    if (heading) {
      blocks.push({ type: "heading", level: heading[1].length, children: parseInline(heading[2]) });
      i++;
      continue;
    }
    if (RULE_RE.test(line)) { blocks.push({ type: "rule" }); i++; continue; }
    if (QUOTE_RE.test(line)) {
      const body = [];
      while (i < lines.length && lines[i].trim() && QUOTE_RE.test(lines[i])) { body.push(lines[i].replace(QUOTE_RE, "")); i++; }
      blocks.push({ type: "quote", children: parseBlocks(body) });
      continue;
    }
    if (LIST_RE.test(line) && (LIST_RE.exec(line)[3] || "").trim() !== "" || /^ *[-*+]$/.test(line)) {
      const [list, next] = parseList(lines, i);
      blocks.push(list);
      i = next;
      continue;
    }
    if (isTableStart(lines, i)) {
      const head = splitRow(lines[i]);
      const align = splitRow(lines[i + 1]).map((cell) => (
        cell.startsWith(":") && cell.endsWith(":") ? "center" : cell.endsWith(":") ? "right" : cell.startsWith(":") ? "left" : ""));
      const rows = [];
      i += 2;
      while (i < lines.length && lines[i].trim() && lines[i].includes("|")) {
        const cells = splitRow(lines[i]);
        rows.push(head.map((_, n) => parseInline(cells[n] || "")));
        i++;
      }
      blocks.push({ type: "table", align, head: head.map((cell) => parseInline(cell)), rows });
      continue;
    }
    const paragraph = [line.trim()];
    i++;
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i]) && !isTableStart(lines, i)) {
      paragraph.push(lines[i].trim());
      i++;
    }
    blocks.push({ type: "paragraph", children: parseInline(paragraph.join("\n")) });
  }
  return blocks;
}

function closingDelimiter(text, delimiter, from) {
  let at = from;
  for (;;) {
    at = text.indexOf(delimiter, at);
    if (at < 0) return -1;
    if (at > from && !/\s/.test(text[at - 1])) return at;
    at += 1;
  }
}

function parseInline(text) {
  const out = [];
  let buffer = "";
  const flush = () => { if (buffer) { out.push({ type: "text", text: buffer }); buffer = ""; } };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length && ESCAPABLE.includes(text[i + 1])) { buffer += text[i + 1]; i += 2; continue; }
    if (c === "\n") { flush(); out.push({ type: "break" }); i++; continue; }
    if (c === "`") {
      let n = 1;
      while (text[i + n] === "`") n++;
      const run = "`".repeat(n);
      let close = text.indexOf(run, i + n);
      while (close >= 0 && text[close + n] === "`") close = text.indexOf(run, close + n + 1);
      if (close > i) {
        let code = text.slice(i + n, close).replace(/\n/g, " ");
        if (code.length > 2 && code.startsWith(" ") && code.endsWith(" ")) code = code.slice(1, -1);
        flush();
        out.push({ type: "code", text: code });
        i = close + n;
        continue;
      }
      buffer += run;
      i += n;
      continue;
    }
    if ((c === "*" || c === "_" || c === "~") && text[i + 1] === c && text[i + 2] && !/\s/.test(text[i + 2])) {
      const wordBefore = c === "_" && i > 0 && /[\p{L}\p{N}]/u.test(text[i - 1]);
      const close = wordBefore ? -1 : closingDelimiter(text, c + c, i + 2);
      if (close > i + 2) {
        flush();
        out.push({ type: c === "~" ? "del" : "strong", children: parseInline(text.slice(i + 2, close)) });
        i = close + 2;
        continue;
      }
    }
    if ((c === "*" || c === "_") && text[i + 1] && !/\s/.test(text[i + 1]) && text[i + 1] !== c) {
      const wordBefore = c === "_" && i > 0 && /[\p{L}\p{N}]/u.test(text[i - 1]);
      let close = wordBefore ? -1 : closingDelimiter(text, c, i + 1);
      while (close > 0 && text[close + 1] === c) close = closingDelimiter(text, c, close + 2);
      if (close > i + 1 && !(c === "_" && /[\p{L}\p{N}]/u.test(text[close + 1] || ""))) {
        flush();
        out.push({ type: "em", children: parseInline(text.slice(i + 1, close)) });
        i = close + 1;
        continue;
      }
    }
    if (c === "[" || (c === "!" && text[i + 1] === "[")) {
      const image = c === "!";
      const open = image ? i + 1 : i;
      const end = text.indexOf("](", open);
      let close = -1;
      for (let j = end + 2, depth = 0; end >= 0 && j < text.length && text[j] !== "\n"; j++) {
        if (text[j] === "(") depth++;
        else if (text[j] === ")" && depth-- === 0) { close = j; break; }
      }
      if (end > open && close > end && !text.slice(open + 1, end).includes("\n")) {
        const label = text.slice(open + 1, end);
        const href = text.slice(end + 2, close).trim().split(/\s+/)[0];
        flush();
        if (SAFE_URL_RE.test(href)) out.push({ type: "link", href, children: image ? [{ type: "text", text: label || href }] : parseInline(label) });
        else out.push(...(image ? [{ type: "text", text: label }] : parseInline(label)));
        i = close + 1;
        continue;
      }
    }
    if ((c === "h" || c === "H") && (i === 0 || /[\s(]/.test(text[i - 1]))) {
      const auto = /^https?:\/\/[^\s<>"]+/i.exec(text.slice(i));
      if (auto) {
        let href = auto[0];
        while (/[.,;:!?)\]'"]$/.test(href)) href = href.slice(0, -1);
        flush();
        out.push({ type: "link", href, children: [{ type: "text", text: href }] });
        i += href.length;
        continue;
      }
    }
    buffer += c;
    i++;
  }
  flush();
  return out;
}

function parseMarkdown(text) {
  return parseBlocks(String(text).replace(/\r\n?/g, "\n").replace(/\t/g, "    ").split("\n"));
}

// --- code highlighting: one pass of a tokenizer shared by the common languages ----------------------------
const HASH_COMMENT = new Set(["python", "py", "bash", "sh", "shell", "zsh", "console", "yaml", "yml", "ruby", "rb", "toml", "r", "perl", "dockerfile", "makefile", "ini", "conf", "powershell", "ps1"]);
const DASH_COMMENT = new Set(["sql", "lua", "haskell", "hs"]);
const KEYWORDS = new Set(("and as assert async await break case catch class const continue def default defer del do elif else "
  + "enum except export extends final finally fn for from func function go goto if impl import in interface is lambda let "
  + "loop match mod module mut new nonlocal not or package pass private protected pub public raise return select self "
  + "static struct super switch this throw throws trait try type typeof use var void where while with yield "
  + "SELECT FROM WHERE INSERT INTO VALUES UPDATE SET DELETE CREATE TABLE DROP ALTER JOIN LEFT RIGHT INNER OUTER ON GROUP BY "
  + "ORDER HAVING LIMIT AS AND OR NOT NULL PRIMARY KEY INDEX select from where insert into values update delete create table join "
  + "echo then fi esac done local export").split(" "));
const LITERALS = new Set(["true", "false", "null", "None", "True", "False", "nil", "undefined", "NaN"]);

function highlight(code, lang) {
  const language = (lang || "").toLowerCase();
  const hash = HASH_COMMENT.has(language);
  const dash = DASH_COMMENT.has(language);
  const slash = !hash && !dash && !["html", "xml", "markdown", "md", "text", "txt", "plain", "json"].includes(language);
  const tokens = [];
  const push = (cls, text) => {
    const last = tokens[tokens.length - 1];
    if (last && last.cls === cls) last.text += text; else tokens.push({ cls, text });
  };
  let i = 0;
  while (i < code.length) {
    const rest = code.slice(i);
    let m;
    if ((hash && rest[0] === "#") || (dash && rest.startsWith("--")) || (slash && rest.startsWith("//"))) {
      const end = code.indexOf("\n", i);
      const stop = end < 0 ? code.length : end;
      push("c", code.slice(i, stop));
      i = stop;
    } else if ((slash || dash) && rest.startsWith("/*")) {
      const end = code.indexOf("*/", i + 2);
      const stop = end < 0 ? code.length : end + 2;
      push("c", code.slice(i, stop));
      i = stop;
    } else if ((m = /^(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$))/.exec(rest)) && m[0].length > 0) {
      push("s", m[0]);
      i += m[0].length;
    } else if ((m = /^(?:"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|`(?:[^`\\]|\\.)*`?)/.exec(rest))) {
      push("s", m[0]);
      i += m[0].length;
    } else if ((m = /^(?:0[xX][0-9a-fA-F_]+|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(rest)) && (i === 0 || !/[\w$]/.test(code[i - 1]))) {
      push("n", m[0]);
      i += m[0].length;
    } else if ((m = /^[A-Za-z_$][\w$]*/.exec(rest))) {
      const word = m[0];
      const after = code.slice(i + word.length).match(/^\s*\(/);
      push(KEYWORDS.has(word) ? "k" : LITERALS.has(word) ? "n" : after ? "f" : "", word);
      i += word.length;
    } else {
      push("", code[i]);
      i++;
    }
  }
  return tokens;
}
