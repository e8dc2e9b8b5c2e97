// Package queue shares the probe runs of one PostgreSQL store between any
// number of worker processes on any machines, through River job queues
// kept in the same database.
//
// The unit of work is a chunk: at most ChunkSize of one tenant's pending
// references in one run, probed for at most ChunkTime. A tenant's chunks
// form a chain: the job of a chunk saves its last results, marks itself
// completed and inserts the tenant's next chunk in one transaction, so a
// tenant is probed by one worker at a time and Teams' per-tenant limit
// holds across machines, while different tenants' chains run on every
// worker at once. A chain is unique per run and tenant among the live
// jobs, so topping a run up (TopUp) never starts a second chain for a
// tenant.
//
// A worker that dies (SIGKILL, a lost machine) leaves its chunk running;
// River's rescuer, on the elected leader, hands it to another worker once
// it has been running for RescueAfter (Worker keeps that under two minutes
// together with the rescuer's 30 s cycle). The chunk is defined by what is
// still pending, so results already saved are never probed again, and in
// message mode the claims in probe_sends (see package runs and probe) keep
// a conversation from getting a second message: a claim without a result
// ends as DeliveryUnknown.
//
// Data flows as in the in-process engine: the queue reads references from
// the store, hands them to probe and writes the results back to the store;
// the run's lifecycle (choosing, finishing) is package runs'.
package queue
