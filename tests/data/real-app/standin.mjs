// A stand-in of the Neptun app's chat route for capturing the bytes its real handler sends.
//
// Nothing of the app is in this file: it bundles the app's own files from a checkout given on the
// command line (server/api/ai/huggingface/[model_publisher]/[model_name]/chat.ts, the guard
// middleware server/middleware/a.guard.server.ts, server/utils/{validate,chat,globals}.ts, lib/, utils/)
// with esbuild, on the real packages (h3, @huggingface/inference, zod, drizzle-zod), and serves them
// with h3. What Nuxt would auto-import is supplied from those same packages and files; the database
// is absent (playground mode never reaches it). Two things stand in for the deployment:
//   - the session: nuxt-auth-utils' requireUserSession is h3's useSession with the app's cookie name
//     (`neptun-session`, nuxt.config.ts) and a password; GET /_standin/login seals {user: {id: 1}};
//   - Nitro's event.$fetch to the app's own API (how the handler persists messages): recorded, and
//     listed by GET /_standin/persisted;
//   - Hugging Face: fetch to huggingface.co / router.huggingface.co goes to BACKEND (a TGI token
//     stream on loopback: `bench target`), and the provider lookup answers "hf-inference".
// Errors are rendered by h3, not by Nitro's error handler: statuses and statusMessage/data are the
// handler's, the JSON envelope is h3's (the Nitro envelope is in the app's facts, not captured here).
//
// usage: node standin.mjs APP_DIR BACKEND_URL PORT   (env STANDIN_SESSION_PASSWORD, 32+ characters)
import { createServer } from 'node:http'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import * as esbuild from 'esbuild'

const [appDir, backend, port] = process.argv.slice(2)
const password = process.env.STANDIN_SESSION_PASSWORD
if (!appDir || !backend || !port || !password || password.length < 32) {
  console.error('usage: STANDIN_SESSION_PASSWORD=<32+ chars> node standin.mjs APP_DIR BACKEND_URL PORT')
  process.exit(2)
}
const here = path.dirname(new URL(import.meta.url).pathname)
const work = process.env.STANDIN_WORK || process.cwd() // where node_modules (h3, esbuild, ...) are
const route = 'server/api/ai/huggingface/[model_publisher]/[model_name]/chat.ts'

// What Nuxt auto-imports into server files, from the real packages and the app's own utils.
const autoImports = `
export * from 'h3'
export { LOG_BACKEND } from '${appDir}/server/utils/globals.ts'
export * from '${appDir}/server/utils/chat.ts'
export * from '${appDir}/server/utils/validate.ts'
import { useSession, createError } from 'h3'
export const useRuntimeConfig = () => ({ huggingfaceApiKey: 'hf_standin' })
export async function requireUserSession(event) {
  const session = await useSession(event, { name: 'neptun-session', password: process.env.STANDIN_SESSION_PASSWORD })
  if (!session.data || !session.data.user) throw createError({ statusCode: 401, message: 'Unauthorized' })
  return session.data
}
`
const entry = `
export { default as guard } from '${appDir}/server/middleware/a.guard.server.ts'
export { default as chat } from '${appDir}/${route}'
`
// The database (and the app's DB schema's runtime parts it needs) is never reached in playground mode.
const dbStub = `export const readProjectContext = async () => null; export const useDrizzle = () => { throw new Error('no database in the stand-in') };
export const hasAccessToChatFile = async () => true, hasAccessToChatMessage = async () => true, hasAccessToChatShare = async () => true,
  hasAccessToGithubRepository = async () => true, hasAccessToProject = async () => true, hasAccessToProjectChatFile = async () => true,
  hasAccessToResource = async () => true, hasAccessToTemplate = async () => true;`

const fs = await import('node:fs')
const withTs = (p) => (fs.existsSync(p) && fs.statSync(p).isFile() ? p : fs.existsSync(p + '.ts') ? p + '.ts' : path.join(p, 'index.ts'))
const plugin = {
  name: 'nuxt-paths',
  setup(build) {
    // first: the database repositories (esbuild asks the resolvers in the order they were added)
    build.onResolve({ filter: /database\/repositories\// }, () => ({ path: 'db-stub', namespace: 'stub' }))
    build.onResolve({ filter: /^~\// }, (a) => ({ path: withTs(path.join(appDir, a.path.slice(2))) }))
    build.onResolve({ filter: /^#auth-utils$/ }, () => ({ path: 'auth-utils', namespace: 'stub' }))
    build.onResolve({ filter: /^auto-imports$/ }, () => ({ path: 'auto-imports', namespace: 'stub' }))
    build.onLoad({ filter: /.*/, namespace: 'stub' }, (a) => ({
      contents: a.path === 'db-stub' ? dbStub : a.path === 'auto-imports' ? autoImports : 'export {}',
      resolveDir: work,
      loader: 'ts',
    }))
    // a relative import without extension inside the app's tree: its .ts file
    build.onResolve({ filter: /^\.\.?\// }, (a) => {
      if (!a.importer.startsWith(appDir)) return undefined
      return { path: withTs(path.join(path.dirname(a.importer), a.path)) }
    })
  },
}
const autoNames = `defineLazyEventHandler defineEventHandler assertMethod sendError createError readValidatedBody setHeader
  getValidatedQuery getValidatedRouterParams getRequestURL useRuntimeConfig requireUserSession LOG_BACKEND
  buildGemma2Prompt buildPhi3Prompt buildQwen25Prompt buildMistralNemoPrompt buildMistral7BV3Prompt
  persistUserChatMessage persistAiChatMessage validateQueryChatId validateParamAiModelName isValidUser`.split(/\s+/)
const injected = path.join(work, 'auto-imports.mjs')
fs.writeFileSync(injected, `export { ${autoNames.join(', ')} } from 'auto-imports'\n`)
await esbuild.build({
  entryPoints: { standin: 'entry' },
  stdin: undefined,
  bundle: true,
  platform: 'node',
  format: 'esm',
  outdir: work,
  outExtension: { '.js': '.bundle.mjs' },
  inject: [injected],
  define: { 'import.meta.dev': 'false' },
  plugins: [
    plugin,
    {
      name: 'entry',
      setup(b) {
        b.onResolve({ filter: /^entry$/ }, () => ({ path: 'entry', namespace: 'stub-entry' }))
        b.onLoad({ filter: /.*/, namespace: 'stub-entry' }, () => ({ contents: entry, resolveDir: work, loader: 'ts' }))
      },
    },
  ],
  external: ['h3'],
  nodePaths: [path.join(work, 'node_modules')],
  logLevel: 'error',
})
const { guard, chat } = await import(pathToFileURL(path.join(work, 'standin.bundle.mjs')).href)
const h3 = await import(pathToFileURL(path.join(work, 'node_modules/h3/dist/index.mjs')).href)

// Hugging Face on loopback
const realFetch = globalThis.fetch
globalThis.fetch = async (input, init) => {
  const url = new URL(typeof input === 'string' ? input : input.url)
  if (url.hostname === 'huggingface.co' && url.pathname.startsWith('/api/models/')) {
    const id = decodeURIComponent(url.pathname.slice('/api/models/'.length))
    const mapping = { 'hf-inference': { status: 'live', providerId: id, task: 'text-generation' } }
    return new Response(JSON.stringify({ _id: id, id, inferenceProviderMapping: mapping }), { headers: { 'content-type': 'application/json' } })
  }
  if (url.hostname.endsWith('huggingface.co')) {
    return realFetch(new URL(url.pathname + url.search, backend), init)
  }
  return realFetch(input, init)
}

// Nitro gives each event a $fetch to the app's own API; the handler persists messages through it
// (/api/users/{id}/chats/{chat_id}/messages). Here those calls are recorded: GET /_standin/persisted.
const persisted = []
const app = h3.createApp()
app.use(h3.defineEventHandler((event) => {
  event.$fetch = async (url, opts) => {
    persisted.push({ url, method: opts?.method, body: opts?.body })
    return { chatMessage: null }
  }
}))
app.use(guard)
const router = h3.createRouter()
router.get('/_standin/login', h3.defineEventHandler(async (event) => {
  const session = await h3.useSession(event, { name: 'neptun-session', password })
  await session.update({ user: { id: 1, primary_email: 'load-test@example.com' } })
  return { ok: true }
}))
router.get('/_standin/persisted', h3.defineEventHandler(() => persisted))
router.post('/api/ai/huggingface/:model_publisher/:model_name/chat', chat)
app.use(router)
createServer(h3.toNodeListener(app)).listen(Number(port), '127.0.0.1', () => {
  console.log(`STANDIN READY http://127.0.0.1:${port}`)
})
