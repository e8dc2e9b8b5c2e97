// Package blockreport holds the domain types shared by the packages of the
// blockreport tool: a stored conversation reference, a probe run and the
// result of probing one conversation in one run.
//
// The packages that do the work are named for what they do:
//
//   - store: persistence of references, runs and results (PostgreSQL or an
//     embedded SQLite file), with embedded migrations.
//   - ingest: parsing of conversation-reference files (Bot Framework
//     ConversationReference JSON, the TeamsFx notification store, CSV).
//   - auth: Entra credentials (secret, certificate, managed identity,
//     workload identity) through azidentity; tokens per tenant and scope.
//   - probe: the per-conversation probe against the Bot Connector API, with
//     classification of every response.
//   - runs: the lifecycle of a run (choose, resume, retry, finish), shared
//     by the in-process engine and the queue.
//   - queue: probe runs shared by worker processes on several machines,
//     through River jobs in the store's PostgreSQL.
//   - report: the Excel workbook and the HTML report of a run.
//   - faketeams: a simulated Bot Connector and Entra token service for tests,
//     the demo and benchmarks.
//   - cmd/blockreport and cmd/faketeams: the commands, where everything is
//     wired together.
package blockreport
