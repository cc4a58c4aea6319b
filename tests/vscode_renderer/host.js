// The test page of tests/test_vscode_widgets.py: a minimal stand-in for VS Code's notebook webview.
//
// It runs a notebook's code cells on a live Jupyter kernel and renders their outputs, with the
// ipywidgets 8 widget manager that VS Code's Jupyter extension loads in its webview: the npm package
// @vscode/jupyter-ipywidgets8, used unmodified (build.mjs copies its dist/ipywidgets.js next to this
// file; it is never part of the repository). What this page does itself is what VS Code does around
// that manager: load requirejs, import the bundle, call activate() and load(), construct the
// WidgetManager on a kernel connection with a script loader, and render widget-view outputs with
// get_model / create_view / display_view. The kernel connection is @jupyterlab/services' own over a
// real websocket (in VS Code the extension host relays the same Jupyter messages into the webview).
//
// Progress for the test is in window.host (plain data, read with page.evaluate):
//   status     what the page is doing; finished: true when it has stopped, successfully or not
//   ok         true when every code cell ran without an error and every widget view rendered
//   errors     kernel errors, render failures ("Error displaying widget"), page errors
//   loadErrors calls of the script loader's errorHandler (a widget class that could not be loaded)
//   loaded     calls of its successHandler: "module@version:Class"
//   scriptRequests  modules the manager asked the script loader to fetch (VS Code would look for
//              them on a CDN or in the kernel's nbextensions; standard ipywidgets never need that)
//   widgetViews  number of widget views displayed
//   log        the widget manager's log lines
import { ContentsManager, KernelManager, ServerConnection } from '@jupyterlab/services';

const WIDGET_MIME = 'application/vnd.jupyter.widget-view+json';
// Like VS Code: the richest output type this page can show wins; a widget view first.
const MIME_ORDER = [WIDGET_MIME, 'text/html', 'image/png', 'image/jpeg', 'image/svg+xml', 'text/plain'];

const host = (window.host = {
  status: 'starting', finished: false, ok: false, errors: [], loadErrors: [], loaded: [],
  scriptRequests: [], widgetViews: 0, log: [],
});
const statusLine = document.getElementById('status');
const cellsNode = document.getElementById('cells');

function setStatus(text) {
  host.status = text;
  statusLine.textContent = text;
}

function describe(error) {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return typeof error === 'string' ? error : JSON.stringify(error);
}

function report(where, error) {
  host.errors.push(`${where}: ${describe(error)}`);
}

window.addEventListener('error', (event) => report('page error', event.error || event.message));
window.addEventListener('unhandledrejection', (event) => report('unhandled rejection', event.reason));

// ---- VS Code's widget manager, loaded the way VS Code's webview loads it
async function loadWidgetManagerClass() {
  if (typeof window.define !== 'function' || typeof window.requirejs !== 'function') {
    throw new Error('requirejs is not on the page (VS Code loads it before the widget bundle)');
  }
  const bundle = await import('./ipywidgets.js'); // a notebook preload: an ES module exporting activate()
  bundle.activate();
  window.vscIPyWidgets8.load(); // what the renderer does once the kernel reports ipywidgets 8
  return window.vscIPyWidgets.WidgetManager;
}

function makeScriptLoader() {
  return {
    // Modules VS Code's script manager has already registered in requirejs: none beyond the
    // bundle's own (@jupyter-widgets/base, /controls, /output), which the manager always knows.
    widgetsRegisteredInRequireJs: new Set(),
    errorHandler(className, moduleName, moduleVersion, error) {
      host.loadErrors.push(`${moduleName}@${moduleVersion}:${className}: ${describe(error)}`);
    },
    successHandler(className, moduleName, moduleVersion) {
      host.loaded.push(`${moduleName}@${moduleVersion}:${className}`);
    },
    async loadWidgetScript(moduleName, moduleVersion) {
      // VS Code would now look for a third-party widget's script; this page has none to offer,
      // so the manager's requirejs lookup fails next and errorHandler reports the class.
      host.scriptRequests.push(`${moduleName}@${moduleVersion}`);
    },
  };
}

// ---- outputs
function textOf(value) {
  return Array.isArray(value) ? value.join('') : String(value);
}

function stripAnsi(text) {
  return text.replace(/\u001b\[[0-9;]*m/g, '');
}

function appendPre(parent, text, className) {
  const pre = document.createElement('pre');
  if (className) pre.className = className;
  pre.textContent = text;
  parent.appendChild(pre);
  return pre;
}

class NotebookHost {
  constructor(kernel, WidgetManager) {
    this.kernel = kernel;
    this.renders = [];
    this.displays = new Map(); // display_id -> output nodes, for update_display_data
    this.manager = new WidgetManager(kernel, cellsNode, makeScriptLoader(), (line) => host.log.push(line));
    // As in VS Code: a widget display message starts resolving its model at once; the render waits for it.
    this.models = new Map();
    kernel.iopubMessage.connect((_sender, msg) => {
      const type = msg.header.msg_type;
      if ((type === 'display_data' || type === 'execute_result') && msg.content.data && msg.content.data[WIDGET_MIME]) {
        this.model(msg.content.data[WIDGET_MIME].model_id);
      }
    });
  }

  model(modelId) {
    if (!this.models.has(modelId)) this.models.set(modelId, this.manager.get_model(modelId));
    return this.models.get(modelId);
  }

  async renderWidget(data, node) {
    if (!data || data.version_major !== 2) throw new Error(`unsupported widget view data ${JSON.stringify(data)}`);
    // The same nesting as VS Code's renderer: a keyboard-reachable region holding the view.
    const region = document.createElement('div');
    region.className = 'cell-output-ipywidget-background';
    region.setAttribute('tabindex', '0');
    region.setAttribute('role', 'region');
    region.setAttribute('aria-label', 'Interactive widget output');
    const inner = document.createElement('div');
    inner.className = 'cell-output';
    region.appendChild(inner);
    node.appendChild(region);
    const model = await this.model(data.model_id);
    const view = await this.manager.create_view(model, { el: region });
    await this.manager.display_view(data, view, { node: region });
    host.widgetViews += 1;
  }

  renderBundle(data, node) {
    const mime = MIME_ORDER.find((m) => data[m] !== undefined);
    node.dataset.mime = mime || '';
    if (mime === WIDGET_MIME) {
      const render = this.renderWidget(data[mime], node).catch((error) => {
        appendPre(node, `Error displaying widget: ${describe(error)}`, 'vsc-error');
        report(`widget ${data[mime] && data[mime].model_id}`, error);
      });
      this.renders.push(render);
    } else if (mime === 'text/html') {
      const div = document.createElement('div');
      div.innerHTML = textOf(data[mime]);
      node.appendChild(div);
    } else if (mime && mime.startsWith('image/')) {
      const img = document.createElement('img');
      img.src = mime === 'image/svg+xml'
        ? `data:${mime};charset=utf-8,${encodeURIComponent(textOf(data[mime]))}`
        : `data:${mime};base64,${textOf(data[mime]).trim()}`;
      node.appendChild(img);
    } else if (mime === 'text/plain') {
      appendPre(node, textOf(data[mime]));
    }
  }

  newOutput(area) {
    if (area.dataset.clearPending) {
      area.replaceChildren();
      delete area.dataset.clearPending;
    }
    const node = document.createElement('div');
    node.className = 'vsc-output';
    area.appendChild(node);
    return node;
  }

  handle(area, msg) {
    const { content } = msg;
    switch (msg.header.msg_type) {
      case 'stream': {
        const last = area.lastElementChild;
        if (last && last.dataset.stream === content.name && !area.dataset.clearPending) {
          last.firstChild.textContent += content.text;
        } else {
          const node = this.newOutput(area);
          node.dataset.stream = content.name;
          appendPre(node, content.text, content.name === 'stderr' ? 'vsc-stderr' : '');
        }
        break;
      }
      case 'display_data':
      case 'execute_result': {
        const node = this.newOutput(area);
        const displayId = content.transient && content.transient.display_id;
        if (displayId) {
          if (!this.displays.has(displayId)) this.displays.set(displayId, []);
          this.displays.get(displayId).push(node);
        }
        this.renderBundle(content.data, node);
        break;
      }
      case 'update_display_data': {
        for (const node of this.displays.get(content.transient && content.transient.display_id) || []) {
          node.replaceChildren();
          this.renderBundle(content.data, node);
        }
        break;
      }
      case 'clear_output':
        if (content.wait) area.dataset.clearPending = '1';
        else area.replaceChildren();
        break;
      case 'error': {
        const node = this.newOutput(area);
        const text = stripAnsi((content.traceback || []).join('\n')) || `${content.ename}: ${content.evalue}`;
        appendPre(node, text, 'vsc-error');
        report('kernel error', `${content.ename}: ${content.evalue}`);
        break;
      }
      default:
        break;
    }
  }

  async run(sources) {
    for (const [index, source] of sources.entries()) {
      setStatus(`running cell ${index + 1} of ${sources.length}`);
      const cell = document.createElement('div');
      cell.className = 'vsc-cell';
      cell.dataset.cell = String(index);
      appendPre(cell, source, 'vsc-source');
      const area = document.createElement('div');
      area.className = 'vsc-outputs';
      cell.appendChild(area);
      cellsNode.appendChild(cell);
      const future = this.kernel.requestExecute({ code: source, stop_on_error: true, allow_stdin: false });
      future.onIOPub = (msg) => this.handle(area, msg);
      const reply = await future.done;
      if (reply.content.status !== 'ok') {
        report(`cell ${index + 1}`, `execution ${reply.content.status}`);
        return false;
      }
    }
    await Promise.all(this.renders);
    return true;
  }
}

async function main() {
  const params = new URLSearchParams(window.location.search);
  const token = params.get('token') || '';
  const notebookPath = params.get('notebook');
  if (!notebookPath) throw new Error('no ?notebook= in the URL');
  const baseUrl = new URL(params.get('base') || '/', window.location.href).href;
  const serverSettings = ServerConnection.makeSettings({
    baseUrl, wsUrl: baseUrl.replace(/^http/, 'ws'), token, appendToken: true,
  });

  setStatus('loading the widget manager');
  const WidgetManager = await loadWidgetManagerClass();

  setStatus(`reading ${notebookPath}`);
  const notebook = await new ContentsManager({ serverSettings }).get(notebookPath, { content: true });
  const sources = notebook.content.cells.filter((c) => c.cell_type === 'code').map((c) => textOf(c.source));

  setStatus('starting a python3 kernel');
  const kernels = new KernelManager({ serverSettings });
  await kernels.ready;
  const kernel = await kernels.startNew({ name: 'python3' });
  await kernel.info; // connected, and the kernel answers

  const notebookHost = new NotebookHost(kernel, WidgetManager);
  window.hostKernel = kernel; // for debugging in the browser
  host.ok = await notebookHost.run(sources);
  setStatus(host.ok ? 'done' : 'failed');
}

main()
  .catch((error) => {
    report('host', error);
    setStatus('failed');
  })
  .finally(() => {
    host.finished = true;
  });
