import t from 'tap'
import { COMMAND_FILES, loadCommands } from '../../cli/main.ts'

t.test('every top-level command is in the lazy-load table, pointing at its file', async t => {
  const names = new Set<string>()
  for (const c of await loadCommands()) {
    const name = String(c.command).split(' ')[0]
    names.add(name)
    t.ok(Object.hasOwn(COMMAND_FILES, name), `${name} is listed`)
    const only = await loadCommands(name)
    t.ok(
      only.some(x => String(x.command).split(' ')[0] === name),
      `${name} loads from ${COMMAND_FILES[name]}`
    )
  }
  for (const name of Object.keys(COMMAND_FILES)) t.ok(names.has(name), `${name} exists`)
})
