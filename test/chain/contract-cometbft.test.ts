// The ChainClient contract suite against 4 real CometBFT v0.38 validators serving our app over
// ABCI, the client talking to one validator's RPC (needs the cometbft that scripts/setup.sh builds).
import t from 'tap'
import { chainClientContract } from './contract.ts'
import { startLocalNet } from './cometbft-net.ts'

chainClientContract(t, '4 CometBFT validators', async () => {
  const net = await startLocalNet(4, { chainId: 'contract' })
  return { url: net.net.validators[2].rpc, stop: net.stop }
})
