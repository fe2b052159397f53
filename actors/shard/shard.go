// Package shard maps users to shards and names the NATS subjects of the
// logic tier.
//
// Subjects (every one visible with `nats sub`):
//
//	im.up.<uid>.<op>      edge → user actor; op is online, offline, send, sync, ack, read.
//	                      A NATS subject mapping (Mapping) rewrites it to
//	im.shard.<n>.<uid>.<op>  which only the owner of shard n subscribes to.
//	im.edge.<edgeID>      actor → edge: replies and pushes (buspb.Down), one
//	                      subscription per edge, never one per user.
//	im.edge.all           anything → every edge: a buspb.Down for every
//	                      signed-in connection (BroadcastSubject).
//	im.alive.edge         edge → logic: heartbeat, payload the edge id.
//	im.alive.host         logic → edges: a logic node started; re-announce.
//	im.dlv.<n>            durable deliveries for the users of shard n
//	                      (buspb.DeliveryBatch) in the JetStream stream
//	                      PARLEY_DELIVERY, one durable consumer per shard.
package shard

import (
	"fmt"
	"hash/fnv"
)

// DefaultCount is the default number of shards. It is fixed for the life of a
// deployment: the subject mapping in nats.conf and every node must agree.
const DefaultCount = 64

// Of returns the shard of uid among count shards. It is the same function as
// the NATS subject-mapping partition(count,1) (FNV-1a 32 of the token), so the
// server-side mapping and Go code always agree.
func Of(uid string, count int) int {
	h := fnv.New32a()
	h.Write([]byte(uid))
	return int(h.Sum32() % uint32(count))
}

// UpSubject is where an edge publishes op for uid.
func UpSubject(uid, op string) string { return "im.up." + uid + "." + op }

// Mapping returns the NATS subject mapping (source, destination) that routes
// im.up.<uid>.<op> to its shard subject.
func Mapping(count int) (src, dest string) {
	return "im.up.*.*", fmt.Sprintf("im.shard.{{partition(%d,1)}}.{{wildcard(1)}}.{{wildcard(2)}}", count)
}

// ShardSubject is the subject the owner of shard n subscribes to.
func ShardSubject(n int) string { return fmt.Sprintf("im.shard.%d.*.*", n) }

// EdgeSubject is the one subject an edge subscribes to.
func EdgeSubject(edgeID string) string { return "im.edge." + edgeID }

// BroadcastSubject is where a buspb.Down with no conn_ids goes to every
// signed-in connection of every edge (e.g. a notice to everyone online).
// Every edge subscribes to it, so "all" is not a valid edge id.
const BroadcastSubject = "im.edge.all"

// EdgeAliveSubject carries every edge's heartbeat (its edge id, once a
// second). A logic node that stops hearing an edge takes that edge's
// devices offline.
const EdgeAliveSubject = "im.alive.edge"

// HostStartedSubject is published by a logic node once it serves its
// shards; edges answer by re-announcing their signed-in connections, so a
// restarted logic node knows every online device again.
const HostStartedSubject = "im.alive.host"

// DeliverySubject is where deliveries for the users of shard n go.
func DeliverySubject(n int) string { return fmt.Sprintf("im.dlv.%d", n) }

// DeliveryStream is the JetStream stream holding durable deliveries.
const DeliveryStream = "PARLEY_DELIVERY"

// DeliveryConsumer names the durable consumer of shard n.
func DeliveryConsumer(n int) string { return fmt.Sprintf("dlv-%d", n) }
