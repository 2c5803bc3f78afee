// kafkajs over TLS and SASL for tests/integration/test_security_clients.py:
//
//   node secure.js '{"brokers": [...], "ca": "<path>", "sasl": {...} | null, "topic": "t", "n": 5}'
//
// Produces n records to the topic, reads the topic's end offsets back through the admin client,
// and prints one JSON line: {"event": "done", "offsets": [...]}, or {"event": "error", ...}.
'use strict'

const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

const spec = JSON.parse(process.argv[2])

async function main () {
  const kafka = new Kafka({
    clientId: 'pykraft-kafkajs-secure',
    brokers: spec.brokers,
    ssl: spec.ca ? { ca: [fs.readFileSync(spec.ca, 'utf-8')] } : false,
    sasl: spec.sasl || undefined,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    retry: { retries: spec.retries === undefined ? 5 : spec.retries, initialRetryTime: 200 }
  })
  const producer = kafka.producer({ allowAutoTopicCreation: true })
  try {
    await producer.connect()
    const messages = []
    for (let i = 0; i < spec.n; i++) messages.push({ value: `kafkajs-${i}` })
    await producer.send({ topic: spec.topic, acks: -1, messages })
    await producer.disconnect()
    const admin = kafka.admin()
    await admin.connect()
    const offsets = await admin.fetchTopicOffsets(spec.topic)
    await admin.disconnect()
    process.stdout.write(JSON.stringify({ event: 'done', offsets }) + '\n')
  } catch (e) {
    process.stdout.write(JSON.stringify({ event: 'error', name: e.name, type: e.type || null, message: e.message }) + '\n')
    try { await producer.disconnect() } catch (_) {}
  }
}

main().then(() => process.exit(0))
