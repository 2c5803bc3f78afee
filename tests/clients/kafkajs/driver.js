// Drives kafkajs against a running cluster for tests/integration/test_kafkajs.py (and
// test_real_clients_apiversions.py, test_txn_clients.py).
//
//   node driver.js '<json spec>'
//
// The spec names a scenario (bootstrap, data, group, admin, failover, txnread, txnwrite) and
// its topics; every observation is one JSON line on stdout, kafkajs's own log (WARN and up)
// goes to stderr. The Python test decides what is right: this script only does things and
// reports what kafkajs saw.
'use strict'

const { Kafka, logLevel, AssignerProtocol, CompressionTypes, ConfigResourceTypes } = require('kafkajs')
const { registerCodecs, CODECS } = require('./codecs')

const spec = JSON.parse(process.argv[2])
// kafkajs keeps some offsets as BigInt, which JSON.stringify refuses.
const toJson = obj => JSON.stringify(obj, (_, v) => (typeof v === 'bigint' ? v.toString() : v))
const emit = obj => process.stdout.write(toJson(obj) + '\n')
const b64 = buf => (buf === null || buf === undefined ? null : Buffer.from(buf).toString('base64'))

const logCreator = () => ({ namespace, label, log }) => {
  const { message, ...rest } = log
  process.stderr.write(`${label} [${namespace}] ${message} ${toJson(rest)}\n`)
}

const kafka = new Kafka({
  clientId: 'pykraft-kafkajs',
  brokers: spec.brokers,
  logLevel: spec.debug ? logLevel.DEBUG : logLevel.WARN,
  logCreator,
  connectionTimeout: 5000,
  requestTimeout: 30000,
  retry: { retries: 10, initialRetryTime: 200 }
})

// An error as data: its kafkajs type, and the per-group or per-partition errors some carry
// (kafkajs's retrier wraps an error it gives up on, keeping it as the cause).
function errorOf (e) {
  const root = e.cause || e
  const each = list => (list || []).map(x => ({
    groupId: x.groupId,
    partition: x.partition,
    errorCode: x.errorCode !== undefined ? x.errorCode : x.error && x.error.code,
    type: x.error && x.error.type
  }))
  return { error: `${e.name}: ${e.message}`, type: root.type || null, groups: each(root.groups), partitions: each(root.partitions) }
}

async function waitFor (cond, what, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

// The same bytes as the Python side builds: every byte value, then the key.
function valueFor (i, key) {
  const body = Buffer.alloc(200 + i)
  for (let j = 0; j < body.length; j++) body[j] = (i * 7 + j) % 256
  return Buffer.concat([body, Buffer.from(key)])
}

function headersOf (message) {
  const out = {}
  for (const [k, v] of Object.entries(message.headers || {})) {
    out[k] = Array.isArray(v) ? v.map(b64) : b64(v)
  }
  return out
}

// Produce with every codec and both acks, an idempotent producer, then read back three topics
// (what kafkajs wrote, what another client wrote with every codec, the idempotent one).
async function data () {
  const { topic, idemTopic, groupId, n, expect } = spec
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  for (const acks of [-1, 1]) {
    for (const codec of Object.keys(CODECS)) {
      const messages = []
      for (let i = 0; i < n; i++) {
        const key = `kafkajs-${acks}-${codec}-${i}`
        messages.push({ key, value: valueFor(i, key), headers: { codec, seq: String(i) } })
      }
      const results = await producer.send({ topic, acks, compression: CODECS[codec], messages })
      emit({ event: 'sent', acks, codec, results })
    }
  }
  await producer.disconnect()

  // An idempotent producer with fewer retries makes kafkajs warn; the test's timeout bounds it.
  const idem = kafka.producer({
    idempotent: true, maxInFlightRequests: 1, retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 2000 }
  })
  await idem.connect()
  for (let b = 0; b < 3; b++) {
    const messages = []
    for (let i = 0; i < 10; i++) messages.push({ partition: 0, key: `idem-${b}-${i}`, value: `v${b}-${i}` })
    const compression = b === 1 ? CompressionTypes.GZIP : CompressionTypes.None
    const results = await idem.send({ topic: idemTopic, acks: -1, compression, messages })
    emit({ event: 'sent-idempotent', batch: b, results })
  }
  await idem.disconnect()

  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200, heartbeatInterval: 500 })
  const seen = new Set()
  const counts = {}
  await consumer.connect()
  await consumer.subscribe({ topics: Object.keys(expect), fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      const id = `${topic}/${partition}/${message.offset}`
      if (seen.has(id)) return
      seen.add(id)
      counts[topic] = (counts[topic] || 0) + 1
      emit({
        event: 'msg',
        topic,
        partition,
        offset: Number(message.offset),
        key: b64(message.key),
        value: b64(message.value),
        headers: headersOf(message)
      })
    }
  })
  await waitFor(() => Object.entries(expect).every(([t, c]) => (counts[t] || 0) >= c),
    `records ${JSON.stringify(expect)}, got ${JSON.stringify(counts)}`)
  await consumer.disconnect()
}

// Two members split the partitions; one leaves, the other takes them all over and reads what
// is produced next; offsets are committed as they go and when the last member leaves.
async function group () {
  const { topic, groupId, partitions, initial, more } = spec
  const assignment = {}
  const consumed = new Set()
  const member = name => {
    const c = kafka.consumer({
      groupId,
      sessionTimeout: 10000,
      rebalanceTimeout: 20000,
      heartbeatInterval: 300,
      maxWaitTimeInMs: 200
    })
    c.on(c.events.GROUP_JOIN, ({ payload }) => {
      assignment[name] = (payload.memberAssignment[topic] || []).slice().sort()
      emit({
        event: 'join',
        consumer: name,
        memberId: payload.memberId,
        isLeader: payload.isLeader,
        protocol: payload.groupProtocol,
        assignment: assignment[name]
      })
    })
    return c
  }
  const run = async (name, c) => {
    await c.connect()
    await c.subscribe({ topics: [topic], fromBeginning: true })
    await c.run({
      eachMessage: async ({ partition, message }) => {
        consumed.add(`${partition}/${message.offset}`)
        emit({ event: 'msg', consumer: name, partition, offset: Number(message.offset) })
      }
    })
  }
  const c1 = member('c1')
  const c2 = member('c2')
  await run('c1', c1)
  await run('c2', c2)
  const half = partitions / 2
  await waitFor(() => {
    const a1 = assignment.c1 || []
    const a2 = assignment.c2 || []
    return a1.length === half && a2.length === half && new Set([...a1, ...a2]).size === partitions &&
      consumed.size >= initial
  }, 'two members splitting the partitions and every record read')
  emit({ event: 'split', c1: assignment.c1, c2: assignment.c2, consumed: consumed.size })
  const a = kafka.admin()
  await a.connect()
  const { groups: [described] } = await a.describeGroups([groupId])
  emit({
    event: 'described',
    state: described.state,
    protocolType: described.protocolType,
    protocol: described.protocol,
    members: described.members.map(m => ({
      memberId: m.memberId,
      clientId: m.clientId,
      clientHost: m.clientHost,
      subscription: AssignerProtocol.MemberMetadata.decode(m.memberMetadata),
      assignment: AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
    }))
  })
  try {
    await a.deleteGroups([groupId])
    emit({ event: 'delete-active-group', ok: true })
  } catch (e) {
    emit({ event: 'delete-active-group', ok: false, ...errorOf(e) })
  }
  await a.disconnect()

  await c1.disconnect()
  await waitFor(() => (assignment.c2 || []).length === partitions, 'c2 taking every partition over')
  emit({ event: 'takeover', c2: assignment.c2 })

  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  const messages = []
  for (let i = 0; i < more; i++) messages.push({ partition: i % partitions, key: `more-${i}`, value: `m${i}` })
  await producer.send({ topic, acks: -1, messages })
  await producer.disconnect()
  await waitFor(() => consumed.size >= initial + more, 'c2 reading the records produced after c1 left')
  await c2.disconnect()
  emit({ event: 'done', consumed: consumed.size })
}

// The admin client's calls, one after another; each reports its result or its error.
async function admin () {
  const { topic, dropTopic, groupId, dropGroup, brokerId, newReplicas } = spec
  const a = kafka.admin()
  await a.connect()
  // A change made through the active controller reaches each broker's metadata shortly after
  // the call returns, as with Kafka: a step that reads one back asks again ``until`` it shows.
  const step = async (name, fn, until = () => true) => {
    const start = Date.now()
    try {
      let result = await fn()
      let attempts = 1
      while (!until(result) && Date.now() - start < 20000) {
        await new Promise(resolve => setTimeout(resolve, 100))
        result = await fn()
        attempts++
      }
      emit({ event: 'admin', step: name, ok: true, ms: Date.now() - start, attempts, result: result === undefined ? null : result })
      return result
    } catch (e) {
      emit({ event: 'admin', step: name, ok: false, ms: Date.now() - start, ...errorOf(e) })
      return undefined
    }
  }
  const topicResource = (name, configNames) => ({ type: ConfigResourceTypes.TOPIC, name, configNames })

  await step('createTopics', () => a.createTopics({
    topics: [
      { topic, numPartitions: 3, replicationFactor: 3, configEntries: [{ name: 'retention.ms', value: '3600000' }] },
      { topic: dropTopic, numPartitions: 1, replicationFactor: 3 }
    ]
  }))
  await step('createTopics-validateOnly', () => a.createTopics({ validateOnly: true, waitForLeaders: false, topics: [{ topic: `${topic}-never`, numPartitions: 2 }] }))
  await step('createTopics-existing', () => a.createTopics({ topics: [{ topic, numPartitions: 3 }] }))
  await step('listTopics', () => a.listTopics())
  await step('fetchTopicMetadata', () => a.fetchTopicMetadata({ topics: [topic] }))

  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  const messages = []
  for (let i = 0; i < 30; i++) messages.push({ partition: i % 3, key: `k${i}`, value: `v${i}` })
  await step('produce', () => producer.send({ topic, acks: -1, messages }))
  await producer.disconnect()

  await step('fetchTopicOffsets', () => a.fetchTopicOffsets(topic))
  await step('fetchTopicOffsetsByTimestamp', () => a.fetchTopicOffsetsByTimestamp(topic, Date.now() - 3600000))
  await step('createPartitions', () => a.createPartitions({ topicPartitions: [{ topic, count: 4, assignments: [newReplicas] }] }))
  await step('fetchTopicMetadata-4', () => a.fetchTopicMetadata({ topics: [topic] }),
    md => md.topics[0].partitions.length === 4)
  await step('describeConfigs', () => a.describeConfigs({
    resources: [topicResource(topic, ['retention.ms', 'cleanup.policy'])], includeSynonyms: false
  }))
  await step('alterConfigs', () => a.alterConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }] }]
  }))
  await step('describeConfigs-altered', () => a.describeConfigs({
    resources: [topicResource(topic, ['retention.ms'])], includeSynonyms: true
  }), d => d.resources[0].configEntries.some(c => c.configValue === '7200000'))
  await step('describeConfigs-broker', () => a.describeConfigs({
    resources: [{ type: ConfigResourceTypes.BROKER, name: String(brokerId), configNames: ['num.partitions'] }],
    includeSynonyms: false
  }))

  await step('setOffsets', () => a.setOffsets({
    groupId, topic, partitions: [{ partition: 0, offset: '5' }, { partition: 1, offset: '7' }]
  }))
  await step('fetchOffsets', () => a.fetchOffsets({ groupId, topics: [topic] }))
  await step('resetOffsets', () => a.resetOffsets({ groupId: dropGroup, topic, earliest: true }))
  await step('fetchOffsets-reset', () => a.fetchOffsets({ groupId: dropGroup, topics: [topic] }))
  await step('listGroups', () => a.listGroups())
  await step('describeGroups', () => a.describeGroups([groupId, 'no-such-group']))

  await step('deleteTopicRecords', () => a.deleteTopicRecords({
    topic, partitions: [{ partition: 0, offset: '4' }, { partition: 1, offset: '-1' }]
  }))
  await step('deleteTopicRecords-beyond', () => a.deleteTopicRecords({ topic, partitions: [{ partition: 2, offset: '99' }] }))
  await step('fetchTopicOffsets-deleted', () => a.fetchTopicOffsets(topic))
  await step('deleteGroups', () => a.deleteGroups([dropGroup]))
  await step('deleteGroups-unknown', () => a.deleteGroups(['no-such-group']))
  await step('listGroups-after', () => a.listGroups())
  await step('describeCluster', () => a.describeCluster())
  await step('deleteTopics', () => a.deleteTopics({ topics: [dropTopic] }))
  await step('listTopics-after', () => a.listTopics(), topics => !topics.includes(dropTopic))
  await a.disconnect()
}

// An idempotent acks=-1 producer keeps sending, one record at a time round the partitions,
// while the test kills a broker (it says so on stdin): each send's latency is reported, until
// every partition has taken ``after`` more records since the kill.
async function failover () {
  const { topic, partitions, after } = spec
  const killed = new Promise(resolve => {
    require('readline').createInterface({ input: process.stdin }).once('line', () => resolve(Date.now()))
  })
  let killedAt = null
  killed.then(t => { killedAt = t })
  const producer = kafka.producer({
    idempotent: true, maxInFlightRequests: 1, retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 1000 }
  })
  await producer.connect()
  const since = new Array(partitions).fill(0)
  for (let i = 0; killedAt === null || since.some(n => n < after); i++) {
    const partition = i % partitions
    const start = Date.now()
    const [result] = await producer.send({ topic, acks: -1, messages: [{ partition, value: `f${i}` }] })
    const afterKill = killedAt !== null && start >= killedAt
    if (afterKill) since[partition]++
    emit({ event: 'sent', partition, ms: Date.now() - start, afterKill, errorCode: result.errorCode, baseOffset: result.baseOffset })
    if (i === 3 * partitions) emit({ event: 'producing' })
    if (killedAt === null) await new Promise(resolve => setTimeout(resolve, 20))
  }
  await producer.disconnect()
}

// A transactional producer (``transactionalId``): each of ``batches`` ({ label, commit, parts:
// [[topic, partition]], offsets? }) is one transaction, one record per part, with
// ``offsets`` ({ group, topic, partition, offset }) sent to it when given, committed or
// aborted.
async function txnwrite () {
  const { transactionalId, batches } = spec
  const producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  for (const { label, commit, parts, offsets } of batches) {
    const txn = await producer.transaction()
    const values = []
    for (const [topic, partition] of parts) {
      const value = `${label}-${topic}-${partition}`
      await txn.send({ topic, acks: -1, messages: [{ partition, value }] })
      values.push(value)
    }
    if (offsets) {
      const { group, topic, partition, offset } = offsets
      await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions: [{ partition, offset: String(offset) }] }] })
    }
    await (commit ? txn.commit() : txn.abort())
    emit({ event: commit ? 'committed' : 'aborted', values })
  }
  await producer.disconnect()
}

// Reads ``topics`` from the beginning in group ``groupId`` (readUncommitted false unless the spec
// says true): every value as text, once ``n`` have come and then none for ``idleMs``.
async function txnread () {
  const { topics, groupId, n, idleMs, readUncommitted } = spec
  const consumer = kafka.consumer({ groupId, readUncommitted: !!readUncommitted, maxWaitTimeInMs: 200, heartbeatInterval: 500 })
  await consumer.connect()
  await consumer.subscribe({ topics, fromBeginning: true })
  const values = []
  let last = Date.now()
  await consumer.run({
    eachMessage: async ({ message }) => { values.push(message.value.toString()); last = Date.now() }
  })
  await waitFor(() => values.length >= n && Date.now() - last > idleMs, `${n} records`)
  await consumer.disconnect()
  emit({ event: 'records', values })
}

// Bootstrap only: the cluster as the admin client sees it (ApiVersions, then Metadata).
async function bootstrap () {
  const a = kafka.admin()
  await a.connect()
  emit({ event: 'cluster', cluster: await a.describeCluster(), topics: await a.listTopics() })
  await a.disconnect()
}

const scenarios = { bootstrap, data, group, admin, failover, txnread, txnwrite }

async function main () {
  await registerCodecs()
  await scenarios[spec.scenario]()
  emit({ event: 'end' })
}

main().then(() => process.exit(0), e => {
  emit({ event: 'error', error: `${e.name}: ${e.message}`, stack: e.stack })
  process.exit(1)
})
