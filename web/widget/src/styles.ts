/**
 * The widget's styles, scoped to its shadow root. `:host { all: initial }` cuts the
 * inheritance from the host page; nothing here can reach the page. `--c` is the brand
 * colour and `--f` the text colour drawn on it.
 */
export const CSS = `
:host{all:initial;display:block!important}
*{box-sizing:border-box}
.pd{position:fixed;bottom:20px;z-index:2147483000;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"PingFang SC","Microsoft YaHei",sans-serif;color:#1c2430;-webkit-text-size-adjust:100%;display:flex;flex-direction:column;align-items:flex-end;gap:12px}
.pd.left{left:20px;align-items:flex-start}.pd.right{right:20px}
button,input,select{font:inherit;color:inherit;margin:0}
.launcher{display:inline-flex;align-items:center;gap:8px;border:0;border-radius:999px;padding:12px 20px 12px 16px;background:var(--c);color:var(--f);font-weight:600;cursor:pointer;box-shadow:0 4px 16px rgba(0,0,0,.22)}
.launcher svg{width:20px;height:20px;fill:currentColor;flex:none}
.launcher:hover{filter:brightness(1.07)}
:focus-visible{outline:3px solid var(--c);outline-offset:2px}
.launcher:focus-visible{outline-color:#1c2430}
.panel{width:340px;max-width:calc(100vw - 24px);max-height:calc(100vh - 100px);overflow:auto;background:#fff;border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.25);padding:16px 18px 18px}
.panel[hidden]{display:none}
.head{display:flex;align-items:center;justify-content:space-between;gap:8px;margin:0 0 4px}
h2{font-size:17px;margin:0;font-weight:700}
.x{border:0;background:transparent;width:32px;height:32px;border-radius:8px;font-size:22px;line-height:1;cursor:pointer;color:#5b6573}
.x:hover{background:#eef1f5}
p{margin:0 0 10px}
.intro{color:#5b6573;font-size:14px}
form{display:flex;flex-direction:column;gap:4px}
form[hidden]{display:none}
label{font-size:13px;font-weight:600;margin-top:6px}
select,input[type=tel],input[type=text]{width:100%;min-height:42px;padding:8px 10px;border:1px solid #c4ccd6;border-radius:8px;background:#fff}
.tel{display:flex;align-items:stretch}
.cc{display:flex;align-items:center;padding:0 10px;border:1px solid #c4ccd6;border-right:0;border-radius:8px 0 0 8px;background:#f3f5f8;color:#5b6573;white-space:nowrap}
.tel input{border-radius:0 8px 8px 0}
[aria-invalid=true]{border-color:#c62828!important}
.hint{font-size:12px;color:#5b6573;margin:2px 0 0}
.err{font-size:13px;color:#c62828;margin:2px 0 0}
.err:empty{display:none}
.check{display:flex;gap:8px;align-items:flex-start;font-weight:400;font-size:14px;margin-top:10px;cursor:pointer}
.check input{width:18px;height:18px;margin-top:1px;flex:none;accent-color:var(--c)}
.go{margin-top:12px;min-height:44px;border:0;border-radius:8px;background:var(--c);color:var(--f);font-weight:600;cursor:pointer}
.go[disabled]{opacity:.6;cursor:progress}
.status{margin-top:12px;padding:10px 12px;border-radius:8px;background:#eef4ff;font-weight:600}
.status:empty{display:none}
.status[data-status=error]{background:#fdecea;color:#8e1c1c}
.status[data-status=failed]{background:#fff4e5}
.status[data-status=completed],.status[data-status=connected]{background:#e8f5e9}
.again{margin-top:10px;width:100%}
@media (max-width:480px){.pd{bottom:12px}.pd.right{right:12px}.pd.left{left:12px}.panel{width:calc(100vw - 24px);max-height:calc(100vh - 84px)}}
@media (prefers-color-scheme:dark){.panel{background:#1e242c;color:#e8ecf1}.intro,.hint,.x{color:#a9b3bf}select,input[type=tel],input[type=text]{background:#141a21;border-color:#46505c}.cc{background:#262e38;border-color:#46505c;color:#a9b3bf}.x:hover{background:#2b333d}.status{background:#1d3150}.status[data-status=error]{background:#4a1f1f;color:#ffd9d6}.status[data-status=failed]{background:#4a3a1a}.status[data-status=completed],.status[data-status=connected]{background:#1f3d24}.err{color:#ff8a80}[aria-invalid=true]{border-color:#ff8a80!important}}
@media (prefers-reduced-motion:no-preference){.panel{animation:up .16s ease-out}@keyframes up{from{opacity:0;transform:translateY(8px)}}}
`;
