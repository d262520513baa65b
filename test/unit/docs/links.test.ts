// The README is the front door and docs/ holds a page per task: every relative link between them
// resolves, to a page that exists and a heading in it, and every page is one click from the README.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, anchors, links, markdownPages } from "../../docs.js";

const pages = markdownPages();
const text = (page: string) => readFileSync(join(ROOT, page), "utf8");

describe("the documentation's links", () => {
  it("has a README and pages under docs/", () => {
    expect(pages).toContain("README.md");
    expect(pages.filter((p) => p.startsWith("docs/")).length).toBeGreaterThanOrEqual(10);
  });

  it.each(pages)("%s: every relative link reaches a file and, with #, a heading in it", (page) => {
    const broken: string[] = [];
    for (const target of links(text(page))) {
      if (/^[a-z]+:/.test(target)) continue;
      const [path, anchor] = target.split("#") as [string, string | undefined];
      const file = path === "" ? page : normalize(join(dirname(page), path));
      if (!existsSync(join(ROOT, file))) {
        broken.push(`${target}: no file ${file}`);
        continue;
      }
      if (anchor !== undefined && file.endsWith(".md") && !anchors(text(file)).has(anchor)) broken.push(`${target}: no heading #${anchor} in ${file}`);
    }
    expect(broken).toEqual([]);
  });

  it("reaches every page of docs/ from the README in one click", () => {
    const linked = new Set(links(text("README.md")).map((t) => normalize(t.split("#")[0] as string)));
    expect(pages.filter((p) => p.startsWith("docs/") && !linked.has(p))).toEqual([]);
  });
});
