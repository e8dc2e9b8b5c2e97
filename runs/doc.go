// Package runs is the lifecycle of a probe run, shared by the commands and
// by anything else that drives the probe engine (a queue worker).
//
// A run is chosen by Begin: a new run, the unfinished run it resumes, or a
// finished run whose unchecked results are re-probed in place (Retry).
// Begin takes the store's run lock, so that two processes never probe one
// store at once, and Session.Store writes results and message claims only
// while that lock is still held: a process that lost it (a PostgreSQL
// restart let another one take it) stops without writing more.
//
// Session.Probe drives the engine until every reference has a result in
// the run, then marks it finished (store.FinishRun checks and marks in one
// statement, so references imported while the run went on are probed
// first); a stop records it interrupted or failed, resumable by the next
// Begin. CheckCoverage is the preflight of the allow-list; Delete and Prune
// are the retention of runs.
//
// The states are blockreport.RunRunning, RunInterrupted (cancelled, or the
// store stayed down: resumable), RunFailed (a configuration problem such as
// a 401: a new run starts next time unless it is resumed by id) and
// RunFinished (every reference has exactly one result).
package runs
