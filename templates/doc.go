// Package templates holds the files the HTML report is rendered from: the
// html/template source, its stylesheet and its small filtering script.
//
// It is a package of its own because go:embed cannot reach files outside the
// embedding package's directory; package report parses them from FS once.
package templates
