import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initChainHome, startEmbeddedValidator } from '../../chain/validator.ts'
import { createTestOnlyQuorumRules } from '../../chain/testing.ts'
import { chainClientContract } from './contract.ts'

chainClientContract(t, 'embedded validator', async () => {
  const home = await mkdtemp(join(tmpdir(), 'quorate-contract-'))
  await initChainHome({ home, chainId: 'contract' })
  const v = await startEmbeddedValidator({ home, rules: createTestOnlyQuorumRules(), blockIntervalMs: 0 })
  return {
    url: v.url,
    stop: async () => {
      await v.stop()
      await rm(home, { recursive: true, force: true })
    }
  }
})
