package kafka

import (
	"context"
	"encoding/binary"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxFetchWait bounds a fetch long poll.
const maxFetchWait = 30 * time.Second

func (s *Server) metadata(ctx context.Context, req *kmsg.MetadataRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	for _, b := range s.cfg.Cluster.Brokers() {
		resp.Brokers = append(resp.Brokers, kmsg.MetadataResponseBroker{NodeID: b.ID, Host: b.Host, Port: b.Port})
	}
	id := s.cfg.Cluster.ClusterID()
	resp.ClusterID = &id
	resp.ControllerID = -1
	if c, err := s.cfg.Cluster.Coordinator(""); err == nil {
		resp.ControllerID = c.ID
	}
	var names []string
	all := (req.Version == 0 && len(req.Topics) == 0) || (req.Version > 0 && req.Topics == nil)
	if !all {
		names = make([]string, 0, len(req.Topics))
		for _, t := range req.Topics {
			if t.Topic != nil {
				names = append(names, *t.Topic)
			}
		}
		if len(names) == 0 {
			return resp
		}
	}
	// Before v4 a Metadata request always asked for auto-creation.
	autoCreate := req.Version < 4 || req.AllowAutoTopicCreation
	for _, t := range s.cfg.Cluster.Topics(ctx, names, autoCreate && !all) {
		name := t.Name
		mt := kmsg.MetadataResponseTopic{Topic: &name, ErrorCode: errorCode(t.Err), AuthorizedOperations: -2147483648}
		for _, p := range t.Partitions {
			mp := kmsg.MetadataResponseTopicPartition{
				Partition:   p.ID,
				Leader:      p.Leader,
				LeaderEpoch: p.LeaderEpoch,
				Replicas:    p.Replicas,
				ISR:         p.ISR,
				ErrorCode:   errorCode(p.Err),
			}
			if mp.Replicas == nil {
				mp.Replicas = []int32{}
			}
			if mp.ISR == nil {
				mp.ISR = []int32{}
			}
			mt.Partitions = append(mt.Partitions, mp)
		}
		resp.Topics = append(resp.Topics, mt)
	}
	return resp
}

func (s *Server) produce(ctx context.Context, req *kmsg.ProduceRequest) (kmsg.Response, error) {
	if req.TransactionID != nil && *req.TransactionID != "" {
		if req.Acks == 0 {
			return nil, closeErr("transactional produce is not supported")
		}
	}
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	if timeout <= 0 || timeout > 30*time.Second {
		timeout = 30 * time.Second
	}
	var wg sync.WaitGroup
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for ti, t := range req.Topics {
		rt := &resp.Topics[ti]
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		for pi, p := range t.Partitions {
			rp := &rt.Partitions[pi]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.BaseOffset = -1
			rp.LogAppendTime = -1
			rp.LogStartOffset = -1
			if req.TransactionID != nil && *req.TransactionID != "" {
				rp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
				continue
			}
			if err := s.checkProduceBatch(p.Records); err != nil {
				rp.ErrorCode = errorCode(err)
				rp.ErrorMessage = errMessage(err)
				s.logger.Info("kafka produce rejected", "topic", t.Topic, "partition", p.Partition, "err", err)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				base, err := s.cfg.Cluster.Produce(ctx, t.Topic, p.Partition, p.Records, timeout)
				if err != nil {
					rp.ErrorCode = errorCode(err)
					rp.ErrorMessage = errMessage(err)
					return
				}
				rp.BaseOffset = base
			}()
		}
	}
	wg.Wait()
	if req.Acks == 0 {
		return nil, nil
	}
	return resp, nil
}

// Record batch v2 header fields the listener checks before the node does
// its full validation (see the node's batch check).
const (
	batchHeaderLen  = 61
	batchOffLength  = 8
	batchOffMagic   = 16
	batchOffAttrs   = 21
	attrControl     = 0x20
	attrTransaction = 0x10
	attrCodecMask   = 0x07
)

// checkProduceBatch makes sure the records field is exactly one record
// batch v2 of the right length, not transactional or a control batch, and
// within the batch size limit. CRC and counts are the node's checks.
func (s *Server) checkProduceBatch(b []byte) error {
	if len(b) > s.cfg.MaxBatchBytes {
		return kerr.MessageTooLarge
	}
	if len(b) < batchHeaderLen {
		return kerr.CorruptMessage
	}
	if l := int64(int32(binary.BigEndian.Uint32(b[batchOffLength:]))) + 12; l != int64(len(b)) {
		// Clients send one batch per partition; anything else is not a
		// request we can store as it came.
		return kerr.CorruptMessage
	}
	if b[batchOffMagic] != 2 {
		return kerr.UnsupportedForMessageFormat
	}
	attrs := binary.BigEndian.Uint16(b[batchOffAttrs:])
	if attrs&(attrControl|attrTransaction) != 0 {
		return kerr.UnsupportedForMessageFormat
	}
	if attrs&attrCodecMask > 4 {
		return kerr.CorruptMessage
	}
	return nil
}

func (s *Server) fetch(ctx context.Context, req *kmsg.FetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	wait := min(time.Duration(req.MaxWaitMillis)*time.Millisecond, maxFetchWait)
	deadline := time.Now().Add(wait)
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = 50 << 20
	}
	maxBytes = min(maxBytes, s.cfg.MaxFrameBytes/2)
	for {
		var changed []<-chan struct{}
		total, failed := 0, false
		resp.Topics = resp.Topics[:0]
		for _, t := range req.Topics {
			rt := kmsg.FetchResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition = p.Partition
				rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
				rp.PreferredReadReplica = -1
				remaining := maxBytes - total
				if remaining <= 0 && total > 0 {
					// Over the response limit: report the partition without data.
					remaining = 0
				}
				limit := int(p.PartitionMaxBytes)
				if limit <= 0 {
					limit = 1 << 20
				}
				if remaining > 0 {
					limit = min(limit, remaining)
				}
				res, err := s.cfg.Cluster.Fetch(ctx, t.Topic, p.Partition, p.FetchOffset, limit)
				if err != nil {
					rp.ErrorCode = errorCode(err)
					failed = true
				} else {
					rp.HighWatermark = res.HighWatermark
					rp.LastStableOffset = res.HighWatermark // no transactions: everything is stable
					rp.LogStartOffset = res.LogStartOffset
					if remaining > 0 || total == 0 {
						for _, b := range res.Batches {
							rp.RecordBatches = append(rp.RecordBatches, b...)
						}
						total += len(rp.RecordBatches)
					}
					if res.Changed != nil {
						changed = append(changed, res.Changed)
					}
				}
				if rp.RecordBatches == nil {
					// Null would be a MessageSetSize of -1, which
					// librdkafka rejects.
					rp.RecordBatches = []byte{}
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		left := time.Until(deadline)
		if failed || total >= max(int(req.MinBytes), 1) || left <= 0 || len(changed) == 0 {
			return resp
		}
		if !waitAny(ctx, changed, left) {
			return resp
		}
	}
}

// waitAny waits until one of chs is closed (true) or d passes or ctx ends.
func waitAny(ctx context.Context, chs []<-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	if len(chs) == 1 {
		select {
		case <-chs[0]:
			return true
		case <-t.C:
		case <-ctx.Done():
		}
		return false
	}
	woke := make(chan struct{}, 1)
	stop := make(chan struct{})
	defer close(stop)
	for _, ch := range chs {
		go func() {
			select {
			case <-ch:
				select {
				case woke <- struct{}{}:
				default:
				}
			case <-stop:
			}
		}()
	}
	select {
	case <-woke:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (s *Server) listOffsets(ctx context.Context, req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, t := range req.Topics {
		rt := kmsg.ListOffsetsResponseTopic{Topic: t.Topic}
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.Timestamp, rp.Offset, rp.LeaderEpoch = -1, -1, -1
			off, epoch, err := s.cfg.Cluster.ListOffset(ctx, t.Topic, p.Partition, p.Timestamp)
			if err != nil {
				rp.ErrorCode = errorCode(err)
			} else {
				rp.Offset, rp.LeaderEpoch = off, epoch
				if p.Timestamp >= 0 && off >= 0 {
					rp.Timestamp = p.Timestamp
				}
				if req.Version == 0 {
					if p.MaxNumOffsets > 0 && off >= 0 {
						rp.OldStyleOffsets = []int64{off}
					} else {
						rp.OldStyleOffsets = []int64{}
					}
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Server) initProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil && *req.TransactionalID != "" {
		// Transactions are out of scope: a clear, non-retriable refusal.
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		s.logger.Info("kafka transactional producer refused: transactions are not supported", "transactional_id", *req.TransactionalID)
		return resp
	}
	if req.Version >= 3 && req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < 32767 {
		// An idempotent producer bumping its epoch after an error: the
		// partition FSM accepts any sequence at a new epoch.
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
		return resp
	}
	id, err := s.cfg.Cluster.InitProducerID(ctx)
	if err != nil {
		resp.ErrorCode = errorCode(err)
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}

func (s *Server) createTopics(ctx context.Context, req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	if timeout <= 0 || timeout > 60*time.Second {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, t := range req.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		rt.NumPartitions, rt.ReplicationFactor = -1, -1
		err := s.createTopic(ctx, t, req.ValidateOnly)
		rt.ErrorCode = errorCode(err)
		rt.ErrorMessage = errMessage(err)
		if err == nil {
			rt.NumPartitions, rt.ReplicationFactor = t.NumPartitions, t.ReplicationFactor
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Server) createTopic(ctx context.Context, t kmsg.CreateTopicsRequestTopic, validateOnly bool) error {
	if len(t.ReplicaAssignment) > 0 {
		return kerr.InvalidReplicaAssignment
	}
	spec := TopicSpec{Name: t.Topic, Partitions: int(t.NumPartitions), ReplicationFactor: int(t.ReplicationFactor)}
	for _, c := range t.Configs {
		if c.Value == nil {
			continue
		}
		v, err := strconv.ParseInt(*c.Value, 10, 64)
		switch c.Name {
		case "retention.ms":
			if err != nil {
				return kerr.InvalidConfig
			}
			spec.RetentionMs = v
		case "retention.bytes":
			if err != nil {
				return kerr.InvalidConfig
			}
			spec.RetentionBytes = v
		}
	}
	if validateOnly {
		return nil
	}
	return s.cfg.Cluster.CreateTopic(ctx, spec)
}

func (s *Server) deleteTopics(ctx context.Context, req *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	for _, name := range req.TopicNames {
		err := s.cfg.Cluster.DeleteTopic(ctx, name)
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic = &name
		rt.ErrorCode = errorCode(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Server) describeConfigs(ctx context.Context, req *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var configs map[string]string
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			ts := s.cfg.Cluster.Topics(ctx, []string{r.ResourceName}, false)
			if len(ts) != 1 || ts[0].Err != nil {
				rr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			configs = topicConfigs(ts[0], s.cfg.MaxBatchBytes)
		case kmsg.ConfigResourceTypeBroker:
			configs = map[string]string{
				"message.max.bytes":         strconv.Itoa(s.cfg.MaxBatchBytes),
				"auto.create.topics.enable": "true",
			}
		default:
			rr.ErrorCode = kerr.InvalidRequest.Code
			msg := "only topic and broker configs are described"
			rr.ErrorMessage = &msg
		}
		for _, name := range sortedKeys(configs) {
			if r.ConfigNames != nil && !contains(r.ConfigNames, name) {
				continue
			}
			v := configs[name]
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			c.Name, c.Value, c.ReadOnly = name, &v, true
			c.Source = kmsg.ConfigSourceDefaultConfig
			rr.Configs = append(rr.Configs, c)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

func topicConfigs(t TopicInfo, maxBatch int) map[string]string {
	ms, bytes := t.RetentionMs, t.RetentionBytes
	if ms <= 0 {
		ms = -1
	}
	if bytes <= 0 {
		bytes = -1
	}
	return map[string]string{
		"cleanup.policy":         "delete",
		"compression.type":       "producer",
		"max.message.bytes":      strconv.Itoa(maxBatch),
		"message.timestamp.type": "CreateTime",
		"min.insync.replicas":    strconv.Itoa(t.ReplicationFactor/2 + 1),
		"retention.bytes":        strconv.FormatInt(bytes, 10),
		"retention.ms":           strconv.FormatInt(ms, 10),
	}
}
