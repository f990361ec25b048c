// The peer receiver: the smallest honest version of mailhook-ingest's job in Go, as a
// ceiling for its request rate. net/http; each POST /v1/webhooks/<any> is checked like
// mailhook's ivymail source (hex HMAC-SHA256 of the body in X-Ivymail-Signature), then
// produced with franz-go (acks=all, idempotent, linger 0) and answered 200 only after
// the broker's acknowledgement. Built at bench time by tests/bench/run (never by
// tests/run).
//
// usage: peer -listen 127.0.0.1:PORT -brokers HOST:PORT -topic T -secret S
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"io"
	"log"
	"net/http"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka bootstrap servers")
	topic := flag.String("topic", "", "topic to produce to")
	secret := flag.String("secret", "", "HMAC secret")
	flag.Parse()

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(*brokers),
		kgo.DefaultProduceTopic(*topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(context.Background()); err != nil {
		log.Fatal(err)
	}
	key := []byte(*secret)

	http.HandleFunc("/v1/webhooks/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "method", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body", http.StatusBadRequest)
			return
		}
		got, err := hex.DecodeString(r.Header.Get("X-Ivymail-Signature"))
		mac := hmac.New(sha256.New, key)
		mac.Write(body)
		if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
			http.Error(w, "signature", http.StatusUnauthorized)
			return
		}
		if err := cl.ProduceSync(r.Context(), &kgo.Record{Value: body}).FirstErr(); err != nil {
			http.Error(w, "kafka", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	log.Printf("ready on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
