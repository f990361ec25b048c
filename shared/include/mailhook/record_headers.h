/*
 * record_headers.h — the Kafka record headers mailhook writes, in one place.
 *
 * Ingest puts the first five on every raw record; the worker copies them and adds the
 * dlq ones on a dead letter. The worker, replay and `mailhook dlq` read them back.
 * docs/design.md (ingest and worker contracts) describes each.
 */
#ifndef MH_RECORD_HEADERS_H
#define MH_RECORD_HEADERS_H

/* On every raw record (ingest). */
#define MH_HDR_SOURCE "mh-source"           /* the source's name */
#define MH_HDR_PROVIDER "mh-provider"       /* the source's provider */
#define MH_HDR_TENANT "mh-tenant"           /* the source's tenant */
#define MH_HDR_RECEIVED_AT "mh-received-at" /* when ingest had the whole request, UTC */
#define MH_HDR_REQUEST_ID "mh-request-id"   /* the request id in ingest's log */

/* Added on a dead letter (worker). */
#define MH_HDR_DLQ_REASON "mh-dlq-reason"       /* why the record could not be processed */
#define MH_HDR_DLQ_STAGE "mh-dlq-stage"         /* where it failed: parse, store */
#define MH_HDR_RAW_TOPIC "mh-raw-topic"         /* the raw record's coordinates */
#define MH_HDR_RAW_PARTITION "mh-raw-partition"
#define MH_HDR_RAW_OFFSET "mh-raw-offset"

#endif
