package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

func Example() {
	c, err := client.New(client.Config{Servers: []string{"127.0.0.1:7071", "127.0.0.1:7072"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// Always bound calls: they retry through leader changes until ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := c.CreateTopic(ctx, transport.CreateTopicRequest{Name: "events", Partitions: 3, ReplicationFactor: 3}); err != nil &&
		transport.CodeOf(err) != transport.ErrTopicExists {
		log.Fatal(err)
	}
	if err := c.WaitForLeaders(ctx, "events"); err != nil {
		log.Fatal(err)
	}

	p, err := c.NewProducer(client.ProducerConfig{Topic: "events"})
	if err != nil {
		log.Fatal(err)
	}
	p.Send(ctx, client.Record{Key: []byte("user-1"), Value: []byte("hello")}, func(r client.Record, err error) {
		switch {
		case err == nil:
			fmt.Println("stored at", r.Partition, r.Offset)
		case client.IsUnknownOutcome(err):
			fmt.Println("may or may not be stored:", err)
		default:
			fmt.Println("not stored:", err)
		}
	})
	if err := p.Close(); err != nil { // flushes
		log.Fatal(err)
	}

	cn, err := c.NewConsumer(ctx, client.ConsumerConfig{Topic: "events", Group: "g1", Start: transport.OffsetEarliest})
	if err != nil {
		log.Fatal(err)
	}
	for !cn.AtEnd() {
		recs, err := cn.Poll(ctx)
		if err != nil && !client.IsRetriable(err) {
			log.Fatal(err)
		}
		for _, r := range recs {
			fmt.Printf("%d/%d %s=%s\n", r.Partition, r.Offset, r.Key, r.Value)
		}
	}
	if err := cn.Commit(ctx); err != nil {
		log.Fatal(err)
	}
}
