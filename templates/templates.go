package templates

import "embed"

// FS holds report.html.tmpl, report.css and report.js. The CSS and script
// are inlined into the report by package report, which also puts their
// SHA-256 hashes into the report's Content-Security-Policy.
//
//go:embed report.html.tmpl report.css report.js
var FS embed.FS
