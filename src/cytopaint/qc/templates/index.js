(function(){
var D=JSON.parse(document.getElementById("data").textContent),C=D.columns,R=D.rows,L=D.limits,I={};
C.forEach(function(c,i){I[c[0]]=i});
var PAGE=100,page=0,sortCol=I.flagged_tiles,asc=false,view=[];
var q=document.getElementById("q"),fo=document.getElementById("flagged"),ro=document.getElementById("reviewed");
var body=document.querySelector("#stack tbody"),head=document.querySelector("#stack thead tr");
function esc(s){return String(s).replace(/[&<>"]/g,function(c){return{"&":"&amp;","<":"&lt;",">":"&gt;",
  '"':"&quot;"}[c]})}
function fmt(v,k){if(v===null||v===undefined||v==="")return"–";
  if(k==="int")return v.toLocaleString("en");if(k==="mm2")return(v/1e6).toFixed(3);
  if(k==="pct")return v.toFixed(2);if(k==="rel")return(v>0?"+":"")+(100*v).toFixed(0)+"%";
  if(k==="z")return v.toFixed(2);return esc(v)}
function bad(key,v){if(v===null||v===undefined)return false;var l=L[key];
  return l!==undefined&&(key==="worst_seam"?v>l:Math.abs(v)>l)}
C.forEach(function(c,i){var th=document.createElement("th");th.textContent=c[1];th.className=c[2];
  th.addEventListener("click",function(){if(sortCol===i)asc=!asc;else{sortCol=i;asc=c[2]==="text"}update()});
  head.appendChild(th)});
function update(){
  var terms=q.value.toLowerCase().split(/[\s,]+/).filter(Boolean),f=fo.checked,r=ro.checked;
  view=[];for(var i=0;i<R.length;i++){var row=R[i],s=row[0].toLowerCase(),ok=!terms.length;
    for(var t=0;t<terms.length&&!ok;t++)if(s.indexOf(terms[t])>=0)ok=true;
    if(ok&&f&&!(row[I.flagged_tiles]>0||String(row[I.flags]).indexOf("section_")>=0))ok=false;
    if(ok&&r&&!(row[I.regenerated]>0||row[I.accepted]>0))ok=false;if(ok)view.push(i)}
  var k=sortCol,text=C[k][2]==="text"||C[k][2]==="link",dir=asc?1:-1,abs=C[k][2]==="rel"||C[k][0]==="worst_intensity_z";
  view.sort(function(a,b){var x=R[a][k],y=R[b][k];if(x===null&&y===null)return a-b;if(x===null)return 1;
    if(y===null)return -1;if(text)return dir*String(x).localeCompare(String(y))||a-b;
    if(abs){x=Math.abs(x);y=Math.abs(y)}return dir*(x-y)||a-b});
  page=Math.min(page,Math.max(0,Math.ceil(view.length/PAGE)-1));render()}
function render(){
  Array.prototype.forEach.call(head.children,function(th,i){if(i===sortCol)th.setAttribute("aria-sort",
    asc?"ascending":"descending");else th.removeAttribute("aria-sort")});
  var h=[],end=Math.min(view.length,(page+1)*PAGE);
  for(var j=page*PAGE;j<end;j++){var row=R[view[j]],cells=[];
    for(var c=0;c<C.length;c++){var k=C[c][2],v=row[c];
      if(k==="link")cells.push('<td class="link"><a href="'+esc(v)+'">report</a></td>');
      else if(c===0)cells.push('<td class="text"><a href="'+esc(row[I.report])+'">'+esc(v)+"</a></td>");
      else cells.push('<td class="'+k+(bad(C[c][0],v)||(C[c][0]==="flagged_tiles"&&v>0)?" bad":"")+'">'+
        fmt(v,k)+"</td>")}
    h.push("<tr>"+cells.join("")+"</tr>")}
  body.innerHTML=h.join("");
  document.getElementById("count").textContent=view.length?("rows "+(page*PAGE+1)+"–"+end+" of "+
    view.length.toLocaleString("en")+(view.length<R.length?" (filtered from "+R.length.toLocaleString("en")+")":"")):
    "no section matches";
  document.getElementById("prev").disabled=page===0;document.getElementById("next").disabled=end>=view.length}
document.getElementById("prev").addEventListener("click",function(){page--;render()});
document.getElementById("next").addEventListener("click",function(){page++;render()});
[q,fo,ro].forEach(function(el){el.addEventListener("input",function(){page=0;update()})});
update();})();
