// Package report turns one probe run and its history into the reports the
// admins hand on: an Excel workbook (WriteExcel) and a self-contained HTML
// page (WriteHTML).
//
// Build makes one streamed pass over a run's rows and keeps only counts and
// the first rows of each list, so its memory does not grow with the number of
// conversations; WriteExcel makes a second streamed pass to write every row.
// Both writers treat every stored string as data: in HTML it is escaped by
// html/template, in the workbook it is always written as a string cell,
// never as a formula.
//
// Muting is not observable through any Teams API, so no report claims to
// know who muted the bot.
package report
